//! Cross-site request forgery: one layer in front of every page's form post (`layer`), checking a
//! double-submit token that only Gatehouse can mint (issue 25.15): the time and random bytes,
//! sealed with the key ring, good for 12 hours, so a value made up by someone else is refused.
//! Under https its cookie carries the `__Host-` prefix, which no other host (a sibling subdomain)
//! can set, so a token minted for an attacker cannot be planted in a victim's browser either.
//! Forms repeat the cookie's value in a hidden `csrf` field.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::templates::Body as _;
use super::{Browser, Page};
use crate::api::AppState;
use crate::secret::sealed::Keyring;

/// The cookie's name over http (tests, a laptop).
pub const CSRF_COOKIE: &str = "gatehouse_csrf";
/// What the sealed CSRF value is bound to.
const CSRF_CONTEXT: &[u8] = b"gatehouse login csrf";
/// How long a CSRF token is good for: a form left open overnight asks again.
const CSRF_LIFETIME_SECONDS: i64 = 12 * 3600;

pub struct Csrf<'a> {
    keyring: &'a Keyring,
    secure: bool,
}

impl<'a> Csrf<'a> {
    pub fn new(keyring: &'a Keyring, secure: bool) -> Csrf<'a> {
        Csrf { keyring, secure }
    }

    /// The CSRF tokens of this server's pages.
    pub fn of(state: &'a AppState) -> Csrf<'a> {
        Csrf::new(&state.identity.keyring, super::is_https(state))
    }

    /// The cookie's name: `__Host-gatehouse_csrf` under https.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure { "__Host-gatehouse_csrf" } else { CSRF_COOKIE }
    }

    /// The browser's token, if it holds one Gatehouse minted.
    pub fn existing(&self, headers: &HeaderMap) -> Option<String> {
        super::cookies::read(headers, self.cookie_name()).filter(|value| self.minted(value))
    }

    /// A new token: `<key id>.<sealed (time minted ‖ random bytes), base64url>`.
    pub fn mint(&self) -> String {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&chrono::Utc::now().timestamp().to_be_bytes());
        getrandom::fill(&mut bytes[8..]).expect("the operating system's random source failed");
        let (key_id, sealed) = self.keyring.seal(&bytes, CSRF_CONTEXT);
        format!("{key_id}.{}", data_encoding::BASE64URL_NOPAD.encode(&sealed))
    }

    /// Whether Gatehouse minted `value` within `CSRF_LIFETIME`.
    fn minted(&self, value: &str) -> bool {
        let Some((key_id, sealed)) = value.split_once('.') else { return false };
        let Ok(sealed) = data_encoding::BASE64URL_NOPAD.decode(sealed.as_bytes()) else { return false };
        let Ok(bytes) = self.keyring.open(key_id, &sealed, CSRF_CONTEXT) else { return false };
        let Some(minted) = bytes.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_be_bytes) else {
            return false;
        };
        let age = chrono::Utc::now().timestamp() - minted;
        (0..CSRF_LIFETIME_SECONDS).contains(&age)
    }

    /// Whether the form's token is the browser's, minted by Gatehouse (compared in constant time).
    pub fn matches(&self, headers: &HeaderMap, submitted: &str) -> bool {
        let Some(expected) = self.existing(headers) else { return false };
        !submitted.is_empty() && subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), submitted.as_bytes()).into()
    }

    /// The `Set-Cookie` of `token`.
    pub fn set_cookie(&self, token: &str) -> String {
        super::cookies::set(self.cookie_name(), token, self.secure, None)
    }
}

/// The one CSRF check of the pages: a request that may change something (any method but GET and
/// HEAD) must carry, in its form's `csrf` field, the token of the browser's cookie. A refusal is a
/// page that says what to do, and is audited like every refusal.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, crate::api::envelope::BODY_LIMIT).await else {
        return refused(&state, &parts, "the form is larger than a page's form can be", StatusCode::PAYLOAD_TOO_LARGE);
    };
    let submitted = url::form_urlencoded::parse(&bytes).find(|(key, _)| key == "csrf").map(|(_, value)| value);
    let problem = match submitted {
        None => Some("the form carries no CSRF token"),
        Some(token) if !Csrf::of(&state).matches(&parts.headers, &token) => {
            Some("the form's CSRF token is not one Gatehouse gave this browser")
        }
        Some(_) => None,
    };
    if let Some(reason) = problem {
        return refused(&state, &parts, reason, StatusCode::BAD_REQUEST);
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn refused(state: &AppState, parts: &Parts, reason: &str, status: StatusCode) -> Response {
    let path = parts.uri.path().to_owned();
    state.denials.refused(crate::denials::Refusal {
        action: "web.form",
        ip: crate::api::caller::client(parts).ip,
        method: Some(parts.method.to_string()),
        route: path.clone(),
        resource: path,
        tenant: None,
        reason: reason.to_owned(),
        key_id: None,
        extra: serde_json::Map::new(),
    });
    let browser = Browser::of(state, parts);
    let tr = browser.tr;
    let body = super::templates::Message {
        alert: Some(tr.t("csrf-expired")),
        text: None,
        link: Some(("/login", tr.t("csrf-start-again"))),
    };
    browser.render(Page::new(&tr.t("csrf-expired-title"), body.html()).status(status)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::header;

    use super::*;

    fn with_cookie(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, cookie.parse().expect("a header value"));
        headers
    }

    #[test]
    fn csrf_needs_a_token_gatehouse_minted_in_the_cookie_and_the_same_value() {
        let keyring = Keyring::parse("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("keyring");
        let csrf = Csrf::new(&keyring, false);
        let token = csrf.mint();
        let headers = with_cookie(&format!("gatehouse_csrf={token}"));
        assert!(csrf.matches(&headers, &token));
        assert!(!csrf.matches(&headers, &token[..token.len() - 1]));
        assert!(!csrf.matches(&headers, ""));
        assert!(!csrf.matches(&with_cookie("other=1"), &token));
        // Issue 25.15: a value planted by someone else is no token, even when the form repeats it.
        assert!(!csrf.matches(&with_cookie("gatehouse_csrf=a"), "a"));
        let forged = format!("k1.{}", data_encoding::BASE64URL_NOPAD.encode(&[7u8; 64]));
        assert!(!csrf.matches(&with_cookie(&format!("gatehouse_csrf={forged}")), &forged));
        // Under https the cookie is `__Host-` prefixed: the unprefixed one no longer counts.
        let https = Csrf::new(&keyring, true);
        assert!(!https.matches(&headers, &token));
        let prefixed = with_cookie(&format!("__Host-gatehouse_csrf={token}"));
        assert!(https.matches(&prefixed, &token));
        assert!(https.set_cookie(&token).starts_with("__Host-gatehouse_csrf="));
        assert!(https.set_cookie(&token).contains("Secure"));
    }
}
