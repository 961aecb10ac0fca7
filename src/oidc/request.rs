//! The authorization request (OpenID Connect Core §3.1.2.1) and the rules it must pass before a
//! code is issued: response type, scope, PKCE, `prompt`, `max_age` and how fresh the sign-in is.
//! Pure: the endpoint parses the request, looks the client and the browser's session up, and asks
//! these functions what to do.

use serde::{Deserialize, Serialize};

use crate::model::ClientType;

/// The parameters of an authorization request, as the query string or form carries them.
#[derive(Deserialize, Default, Clone, Serialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    /// `none` or `login` (`consent` and `select_account` are accepted and need nothing here).
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    /// Set by Gatehouse when it sends the browser to sign in again (`prompt=login`, `max_age`):
    /// only a sign-in at or after this Unix time satisfies the request.
    pub auth_after: Option<i64>,
}

/// An OAuth error returned to the client (RFC 6749 §4.1.2.1): its code and description.
pub type Refusal = (&'static str, String);

/// A request that passed every check that does not need the user: what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<'a> {
    pub scopes: Vec<&'a str>,
    /// `prompt=none`: never show a page, answer `login_required` instead.
    pub prompt_none: bool,
    /// `prompt=login`: a new sign-in is required.
    pub prompt_login: bool,
    pub max_age: Option<i64>,
}

/// What to do once the browser's session (if any) is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The sign-in satisfies the request: decide access and issue a code.
    Issue,
    /// Send the browser to sign in; `again`: although it is signed in, with a sign-in no older
    /// than `now` (the request is remembered with `auth_after`).
    SignIn {
        again: bool,
    },
    Refuse(Refusal),
}

impl AuthorizeRequest {
    /// The redirect URI, if the client registered it exactly; never redirect anywhere else (an
    /// unregistered URI is how codes are stolen, RFC 6749 §10.15).
    pub fn registered_redirect(&self, registered: &[String]) -> Option<&str> {
        self.redirect_uri.as_deref().filter(|uri| registered.iter().any(|r| r == uri))
    }

    /// The checks of a request from a client of `client_type` (`active`: not disabled).
    pub fn check(&self, active: bool, client_type: ClientType) -> Result<Checked<'_>, Refusal> {
        let invalid = |message: &str| Err(("invalid_request", message.to_owned()));
        if !active {
            return Err(("unauthorized_client", "the application is disabled".into()));
        }
        if self.response_type.as_deref() != Some("code") {
            return Err(("unsupported_response_type", "only response_type=code is supported".into()));
        }
        let scopes = super::parse_scope(self.scope.as_deref().unwrap_or("")).map_err(|p| ("invalid_scope", p))?;
        match (self.code_challenge.as_deref(), self.code_challenge_method.as_deref()) {
            (Some(challenge), Some("S256")) if super::valid_challenge(challenge) => {}
            (Some(_), Some("S256")) => return invalid("code_challenge is not a valid S256 challenge"),
            (Some(_), _) => return invalid("code_challenge_method must be S256"),
            (None, _) if client_type == ClientType::Public => {
                return invalid("public clients must use PKCE (code_challenge with S256)");
            }
            (None, _) => {}
        }
        let prompts: Vec<&str> = self.prompt.as_deref().unwrap_or("").split(' ').filter(|p| !p.is_empty()).collect();
        let prompt_none = prompts.contains(&"none");
        if prompt_none && prompts.len() > 1 {
            return invalid("prompt=none cannot be combined with other prompts");
        }
        let max_age = match self.max_age.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(seconds)) if seconds >= 0 => Some(seconds),
            Some(_) => return invalid("max_age must be a whole number of seconds"),
        };
        Ok(Checked { scopes, prompt_none, prompt_login: prompts.contains(&"login"), max_age })
    }
}

impl Checked<'_> {
    /// What to do for a browser whose sign-in happened at `auth_time` (Unix seconds; `None`: not
    /// signed in), at `now`. `auth_after` is the request's: a sign-in since then satisfies it.
    pub fn next(&self, auth_time: Option<i64>, auth_after: Option<i64>, now: i64) -> Next {
        let login_required = |why: &str| Next::Refuse(("login_required", why.to_owned()));
        let Some(auth_time) = auth_time else {
            return if self.prompt_none {
                login_required("the user is not signed in")
            } else {
                Next::SignIn { again: false }
            };
        };
        let fresh_enough = auth_after.is_some_and(|after| auth_time >= after);
        let too_old = self.max_age.is_some_and(|max| now - auth_time > max);
        if !fresh_enough && (self.prompt_login || too_old) {
            return if self.prompt_none {
                login_required("the sign-in is older than max_age")
            } else {
                Next::SignIn { again: true }
            };
        }
        Next::Issue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn request() -> AuthorizeRequest {
        AuthorizeRequest {
            response_type: Some("code".into()),
            client_id: Some("app".into()),
            redirect_uri: Some("https://app.example/cb".into()),
            scope: Some("openid email".into()),
            code_challenge: Some(CHALLENGE.into()),
            code_challenge_method: Some("S256".into()),
            ..AuthorizeRequest::default()
        }
    }

    fn code_of(result: Result<Checked<'_>, Refusal>) -> &'static str {
        result.expect_err("refused").0
    }

    #[test]
    fn a_well_formed_request_passes_with_its_scopes() {
        let request = request();
        let checked = request.check(true, ClientType::Public).expect("valid");
        assert_eq!(checked.scopes, ["openid", "email"]);
        assert_eq!((checked.prompt_none, checked.prompt_login, checked.max_age), (false, false, None));
    }

    #[test]
    fn only_a_registered_redirect_uri_is_used() {
        let registered = vec!["https://app.example/cb".to_owned()];
        assert_eq!(request().registered_redirect(&registered), Some("https://app.example/cb"));
        let other = AuthorizeRequest { redirect_uri: Some("https://app.example/cb/".into()), ..request() };
        assert_eq!(other.registered_redirect(&registered), None);
        assert_eq!(AuthorizeRequest::default().registered_redirect(&registered), None);
    }

    #[test]
    fn each_rule_refuses_with_its_oauth_error() {
        assert_eq!(code_of(request().check(false, ClientType::Public)), "unauthorized_client");
        let token = AuthorizeRequest { response_type: Some("token".into()), ..request() };
        assert_eq!(code_of(token.check(true, ClientType::Public)), "unsupported_response_type");
        let no_openid = AuthorizeRequest { scope: Some("email".into()), ..request() };
        assert_eq!(code_of(no_openid.check(true, ClientType::Public)), "invalid_scope");
        let plain = AuthorizeRequest { code_challenge_method: Some("plain".into()), ..request() };
        assert_eq!(code_of(plain.check(true, ClientType::Public)), "invalid_request");
        let short = AuthorizeRequest { code_challenge: Some("short".into()), ..request() };
        assert_eq!(code_of(short.check(true, ClientType::Public)), "invalid_request");
        let none_and_login = AuthorizeRequest { prompt: Some("none login".into()), ..request() };
        assert_eq!(code_of(none_and_login.check(true, ClientType::Public)), "invalid_request");
        let negative = AuthorizeRequest { max_age: Some("-1".into()), ..request() };
        assert_eq!(code_of(negative.check(true, ClientType::Public)), "invalid_request");
    }

    #[test]
    fn pkce_is_required_of_public_clients_only() {
        let without = AuthorizeRequest { code_challenge: None, code_challenge_method: None, ..request() };
        let refused = without.check(true, ClientType::Public).expect_err("public needs PKCE");
        assert!(refused.1.contains("PKCE"), "{refused:?}");
        assert!(without.check(true, ClientType::Confidential).is_ok());
    }

    #[test]
    fn the_session_decides_between_a_code_a_sign_in_and_login_required() {
        let plain = request();
        let checked = plain.check(true, ClientType::Public).expect("valid");
        assert_eq!(checked.next(None, None, 1000), Next::SignIn { again: false });
        assert_eq!(checked.next(Some(10), None, 1000), Next::Issue);

        let silent = AuthorizeRequest { prompt: Some("none".into()), ..request() };
        let checked = silent.check(true, ClientType::Public).expect("valid");
        assert!(matches!(checked.next(None, None, 1000), Next::Refuse(("login_required", _))));

        let bounded = AuthorizeRequest { max_age: Some("60".into()), ..request() };
        let checked = bounded.check(true, ClientType::Public).expect("valid");
        assert_eq!(checked.next(Some(950), None, 1000), Next::Issue);
        assert_eq!(checked.next(Some(900), None, 1000), Next::SignIn { again: true });
        // Signed in again since the request was sent back: satisfied, whatever max_age says.
        assert_eq!(checked.next(Some(900), Some(900), 2000), Next::Issue);

        let login = AuthorizeRequest { prompt: Some("login".into()), ..request() };
        let checked = login.check(true, ClientType::Public).expect("valid");
        assert_eq!(checked.next(Some(999), None, 1000), Next::SignIn { again: true });
        assert_eq!(checked.next(Some(999), Some(990), 1000), Next::Issue);
    }
}
