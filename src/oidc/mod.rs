//! Gatehouse as the OpenID provider of the managed applications: the pure rules (redirect URIs,
//! PKCE, the claims of an ID token) and the signing keys. The endpoints are in `api::oidc`, the SQL
//! in `store::oidc`. An authorization creates a session of the client, a child of the browser's
//! session, so everything that ends sessions (sign-out, role change, disable, suspension, a tenant
//! that stops enabling the application) ends the client's tokens too.

pub mod keys;

use std::sync::Arc;
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::oidc::ClientSession;
pub use keys::{Alg, Keys};

/// How long codes and ID tokens live, and how often keys rotate.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub code: Duration,
    pub id_token: Duration,
    /// The current signing keys are replaced after this long.
    pub key_rotation: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            code: Duration::from_secs(60),
            id_token: Duration::from_secs(3600),
            key_rotation: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What the provider's endpoints share.
pub struct Provider {
    /// The issuer: Gatehouse's public URL, without a trailing slash.
    pub issuer: String,
    pub lifetimes: Lifetimes,
    pub keys: Keys,
}

pub type SharedProvider = Arc<Provider>;

/// A redirect URI a client may register: absolute, https (or http on a loopback host, for local
/// and native applications, RFC 8252 §7.3), no fragment, no credentials.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let parsed = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URL ({e})"))?;
    let loopback = crate::operators::settings::is_loopback(&parsed);
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(format!("`{uri}` must use https (http only on a loopback host)")),
        other => return Err(format!("`{uri}` has scheme `{other}`; use https")),
    }
    if parsed.fragment().is_some() {
        return Err(format!("`{uri}` has a fragment; redirect URIs must not (RFC 6749 §3.1.2)"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("`{uri}` carries credentials"));
    }
    Ok(())
}

/// Whether `verifier` matches the S256 `challenge` (RFC 7636 §4.6), compared in constant time.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes()));
    valid && subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into()
}

/// A valid S256 code challenge: 43 base64url characters.
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The authentication context: `aal2` when a second factor was used, else `aal1` (NIST SP 800-63B).
pub fn acr(amr: &[String]) -> &'static str {
    if amr.iter().any(|m| m == "otp" || m == "mfa") { "aal2" } else { "aal1" }
}

/// The claims about the user: those of userinfo, and of the ID token besides the protocol's.
pub fn user_claims(session: &ClientSession) -> Value {
    let mut claims = json!({
        "sub": session.user_id.to_string(),
        "email": session.email,
        // Accounts are reached only through a mailed link (invitation) or the tenant's IdP, which
        // vouched for the address (federated sign-in requires email_verified).
        "email_verified": true,
        "tenant": session.tenant,
        "role": session.role.as_str(),
    });
    if let (Some(name), Some(map)) = (&session.name, claims.as_object_mut()) {
        map.insert("name".into(), json!(name));
    }
    claims
}

/// The claims of an ID token for `client_id`.
pub fn id_token_claims(
    issuer: &str,
    client_id: &str,
    session: &ClientSession,
    nonce: Option<&str>,
    lifetime: Duration,
) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = user_claims(session);
    if let Some(map) = claims.as_object_mut() {
        map.insert("iss".into(), json!(issuer));
        map.insert("aud".into(), json!(client_id));
        map.insert("azp".into(), json!(client_id));
        map.insert("iat".into(), json!(now));
        map.insert("exp".into(), json!(now + i64::try_from(lifetime.as_secs()).unwrap_or(3600)));
        map.insert("auth_time".into(), json!(session.auth_time.timestamp()));
        map.insert("amr".into(), json!(session.amr));
        map.insert("acr".into(), json!(acr(&session.amr)));
        map.insert("sid".into(), json!(session.id.to_string()));
        if let Some(nonce) = nonce {
            map.insert("nonce".into(), json!(nonce));
        }
    }
    claims
}

/// The OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3).
pub fn discovery(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "end_session_endpoint": format!("{issuer}/oauth2/logout"),
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": Alg::ALL.map(Alg::as_str),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "azp", "sid",
                             "email", "email_verified", "name", "tenant", "role"],
        "acr_values_supported": ["aal1", "aal2"],
        "prompt_values_supported": ["none", "login"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_https_or_loopback_http_without_fragment() {
        assert!(check_redirect_uri("https://app.example/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:5173/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").expect_err("refused").contains("https"));
        assert!(check_redirect_uri("https://app.example/cb#x").expect_err("refused").contains("fragment"));
        assert!(check_redirect_uri("https://u:p@app.example/cb").expect_err("refused").contains("credentials"));
        assert!(check_redirect_uri("/relative").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_challenge(challenge));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!pkce_matches("short", challenge));
    }

    #[test]
    fn acr_says_aal2_only_with_a_second_factor() {
        assert_eq!(acr(&["pwd".into()]), "aal1");
        assert_eq!(acr(&["pwd".into(), "otp".into()]), "aal2");
    }
}
