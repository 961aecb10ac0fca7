//! Gatehouse as the OpenID provider of the managed applications: the pure rules (redirect URIs,
//! PKCE, the claims of an ID token) and the signing keys. The endpoints are in `api::oidc`, the SQL
//! in `store::oidc`. An authorization creates a session of the client, a child of the browser's
//! session, so everything that ends sessions (sign-out, role change, disable, suspension, a tenant
//! that stops enabling the application) ends the client's tokens too.

pub mod keys;
pub mod request;

use std::sync::Arc;
use std::time::Duration;

use data_encoding::BASE64URL_NOPAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::oidc::ClientSession;
pub use keys::Keys;

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

/// The scopes a client may ask for. Each releases claims (`released`): `openid` only `sub`,
/// `email` the address, `profile` the name, `tenant` the user's tenant and role there;
/// `offline_access` asks for a refresh token.
pub const SCOPES: [&str; 5] = ["openid", "email", "profile", "tenant", "offline_access"];

/// The scope values of a request, each known, in the order asked; an unknown one is refused with
/// `invalid_scope` (RFC 6749 §4.1.2.1), and `openid` is required.
pub fn parse_scope(asked: &str) -> Result<Vec<&str>, String> {
    let scopes: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
    if let Some(unknown) = scopes.iter().find(|s| !SCOPES.contains(s)) {
        return Err(format!("the scope `{unknown}` is not supported (supported: {})", SCOPES.join(" ")));
    }
    if !scopes.contains(&"openid") {
        return Err("the scope must include openid".into());
    }
    Ok(scopes)
}

/// The scope of a refreshed token: the one `asked`, if it narrows the `granted` one, else the
/// granted one; widening is refused (RFC 6749 §6).
pub fn narrowed(asked: Option<&str>, granted: &str) -> Result<String, String> {
    match asked {
        None => Ok(granted.to_owned()),
        Some(asked) if asked.split(' ').all(|s| s.is_empty() || granted.split(' ').any(|g| g == s)) => {
            Ok(asked.to_owned())
        }
        Some(_) => Err(format!("the scope granted was `{granted}`")),
    }
}

/// The claims about the user that `scope` releases: those of userinfo, and of the ID token besides
/// the protocol's.
pub fn user_claims(session: &ClientSession, scope: &str) -> Value {
    let released = |s: &str| scope.split(' ').any(|asked| asked == s);
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), json!(session.user_id.to_string()));
    if released("email") {
        claims.insert("email".into(), json!(session.email));
        // Accounts are reached only through a mailed link (invitation) or the tenant's IdP, which
        // vouched for the address (federated sign-in requires email_verified).
        claims.insert("email_verified".into(), json!(true));
    }
    if released("profile")
        && let Some(name) = &session.name
    {
        claims.insert("name".into(), json!(name));
    }
    if released("tenant") {
        claims.insert("tenant".into(), json!(session.tenant));
        claims.insert("role".into(), json!(session.role.as_str()));
    }
    Value::Object(claims)
}

/// The claims of an ID token for `client_id`, with the user claims `scope` releases.
pub fn id_token_claims(
    issuer: &str,
    client_id: &str,
    session: &ClientSession,
    scope: &str,
    nonce: Option<&str>,
    lifetime: Duration,
) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = user_claims(session, scope);
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
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": crate::model::Alg::ALL.map(crate::model::Alg::as_str),
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
    fn unknown_scopes_are_refused_and_openid_is_required() {
        assert_eq!(parse_scope("openid  email tenant"), Ok(vec!["openid", "email", "tenant"]));
        assert!(parse_scope("openid admin").expect_err("refused").contains("`admin` is not supported"));
        assert!(parse_scope("email").expect_err("refused").contains("must include openid"));
    }

    #[test]
    fn a_refresh_may_narrow_the_scope_never_widen_it() {
        assert_eq!(narrowed(None, "openid email"), Ok("openid email".into()));
        assert_eq!(narrowed(Some("openid"), "openid email"), Ok("openid".into()));
        assert!(narrowed(Some("openid tenant"), "openid email").is_err());
    }

    #[test]
    fn claims_are_released_by_scope() {
        let session = ClientSession {
            id: uuid::Uuid::nil(),
            user_id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            tenant: "acme".into(),
            email: "dan@acme.example".into(),
            name: Some("Dan".into()),
            role: crate::model::Role::User,
            amr: vec!["pwd".into()],
            auth_time: chrono::Utc::now(),
            client_id: Some(uuid::Uuid::nil()),
            pending: None,
            created_at: chrono::Utc::now(),
        };
        let keys = |scope: &str| {
            let claims = user_claims(&session, scope);
            let mut keys: Vec<String> = claims.as_object().expect("object").keys().cloned().collect();
            keys.sort();
            keys.join(",")
        };
        assert_eq!(keys("openid"), "sub", "FR: openid alone releases only the subject (issue 25.8)");
        assert_eq!(keys("openid email"), "email,email_verified,sub");
        assert_eq!(keys("openid profile"), "name,sub");
        assert_eq!(keys("openid tenant"), "role,sub,tenant");
    }

    #[test]
    fn acr_says_aal2_only_with_a_second_factor() {
        assert_eq!(acr(&["pwd".into()]), "aal1");
        assert_eq!(acr(&["pwd".into(), "otp".into()]), "aal2");
    }
}
