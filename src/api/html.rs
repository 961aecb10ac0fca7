//! What every browser page shares: one layout (accessible, no scripts), the security headers, the
//! cookies of the browser session and of the CSRF token, and reading a posted form.

use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, request::Parts};
use axum::response::{Html, IntoResponse, Response};

use crate::mail::templates::escape;
use crate::secret::sealed::Keyring;

/// The browser's Gatehouse session: the refresh token of a session, never readable by scripts.
pub const SESSION_COOKIE: &str = "gatehouse_session";
/// The double-submit CSRF token: a random value in a cookie that each form repeats.
pub const CSRF_COOKIE: &str = "gatehouse_csrf";
/// Binds a federated sign-in to the browser that started it (ten minutes).
pub const SSO_COOKIE: &str = "gatehouse_sso";

/// A page: a title, HTML already escaped, a status, and the cookies to set.
pub struct Page {
    pub title: String,
    pub body: String,
    pub status: StatusCode,
    pub cookies: Vec<String>,
    /// Where to go next, without scripts: a `meta refresh` and a link (see `continue_to`).
    pub refresh_to: Option<String>,
}

impl Page {
    pub fn new(title: &str, body: String) -> Page {
        Page { title: title.to_owned(), body, status: StatusCode::OK, cookies: Vec::new(), refresh_to: None }
    }

    pub fn status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }

    pub fn cookie(mut self, cookie: String) -> Page {
        self.cookies.push(cookie);
        self
    }

    /// A page whose only job is to move on to `url` (on this origin, or a registered redirect URI
    /// or identity provider). A redirect answering a form post would be checked against the
    /// form's `form-action` policy, which allows only this origin; a new navigation is not.
    pub fn continue_to(title: &str, url: &str) -> Page {
        let body = format!("<p><a href=\"{}\">Continue</a></p>", escape(url));
        Page { refresh_to: Some(url.to_owned()), ..Page::new(title, body) }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let title = escape(&self.title);
        let refresh = self
            .refresh_to
            .as_deref()
            .map(|url| format!("<meta http-equiv=\"refresh\" content=\"0;url={}\">\n", escape(url)))
            .unwrap_or_default();
        let html = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Gatehouse</title>\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n{refresh}\
             <style>{STYLE}</style></head>\n\
             <body><main><h1>{title}</h1>\n{body}\n</main></body></html>\n",
            body = self.body
        );
        let mut response = (self.status, Html(html)).into_response();
        let headers = response.headers_mut();
        secure(headers);
        for cookie in self.cookies {
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        response
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;\
line-height:1.5;color:#1a1a1a}.problem{color:#a00000;font-weight:600}label{display:block;margin-top:1rem}\
input{display:block;width:100%;padding:.5rem;margin-top:.25rem;box-sizing:border-box;font-size:1rem}\
button{margin-top:1rem;padding:.5rem 1.25rem;font-size:1rem}a{color:#0645ad}\
:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}code{font-size:1.05rem}svg{max-width:14rem}";

/// The headers of every page: never cached (pages carry tokens and session state), never framed,
/// no scripts, forms post only here, no Referer leaking a token in the URL.
pub fn secure(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// A problem shown above a form, announced by screen readers as soon as it appears.
pub fn problem(message: Option<&str>) -> String {
    message
        .map(|m| format!("<p role=\"alert\" class=\"problem\" id=\"problem\">{}</p>\n", escape(m)))
        .unwrap_or_default()
}

/// The value of cookie `name` in the request.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HTTP only, same-site `Lax` (sent on the top-level navigations that come
/// back from a relying party or an identity provider), `Secure` when served over https.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    cookie
}

pub fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", secure, Some(0))
}

/// The login CSRF token of a browser (issue 25.15): a double-submit token that only Gatehouse can
/// mint (the time and random bytes, sealed with the key ring) and that lasts 12 hours, so a value
/// made up by someone else (a one-character guess) is refused; under https its cookie carries the
/// `__Host-` prefix, which no other host (a sibling subdomain) can set, so a token minted for an
/// attacker cannot be planted in a victim's browser either. Forms repeat the cookie's value.
pub struct Csrf<'a> {
    keyring: &'a Keyring,
    secure: bool,
}

/// What the sealed CSRF value is bound to.
const CSRF_CONTEXT: &[u8] = b"gatehouse login csrf";
/// How long a CSRF token is good for: a form left open overnight asks again.
const CSRF_LIFETIME_SECONDS: i64 = 12 * 3600;

impl<'a> Csrf<'a> {
    pub fn new(keyring: &'a Keyring, secure: bool) -> Csrf<'a> {
        Csrf { keyring, secure }
    }

    /// The cookie's name: `__Host-gatehouse_csrf` under https.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure { "__Host-gatehouse_csrf" } else { CSRF_COOKIE }
    }

    /// The browser's token, if it holds one Gatehouse minted.
    pub fn existing(&self, parts: &Parts) -> Option<String> {
        cookie(parts, self.cookie_name()).filter(|value| self.minted(value)).map(str::to_owned)
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
    pub fn matches(&self, parts: &Parts, submitted: &str) -> bool {
        let Some(expected) = self.existing(parts) else { return false };
        !submitted.is_empty() && subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), submitted.as_bytes()).into()
    }

    /// The `Set-Cookie` of `token`.
    pub fn set_cookie(&self, token: &str) -> String {
        set_cookie(self.cookie_name(), token, self.secure, None)
    }
}

/// The hidden field of the CSRF token.
pub fn csrf_field(token: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", escape(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_with_cookie(cookie: &str) -> Parts {
        let request = axum::http::Request::builder().header(header::COOKIE, cookie).body(()).expect("a request");
        request.into_parts().0
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let parts = parts_with_cookie("a=1; gatehouse_csrf=xyz; gatehouse_csrf_other=no");
        assert_eq!(cookie(&parts, CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&parts, "missing"), None);
    }

    #[test]
    fn csrf_needs_a_token_gatehouse_minted_in_the_cookie_and_the_same_value() {
        let keyring = Keyring::parse("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("keyring");
        let csrf = Csrf::new(&keyring, false);
        let token = csrf.mint();
        let parts = parts_with_cookie(&format!("gatehouse_csrf={token}"));
        assert!(csrf.matches(&parts, &token));
        assert!(!csrf.matches(&parts, &token[..token.len() - 1]));
        assert!(!csrf.matches(&parts, ""));
        assert!(!csrf.matches(&parts_with_cookie("other=1"), &token));
        // Issue 25.15: a value planted by someone else is no token, even when the form repeats it.
        assert!(!csrf.matches(&parts_with_cookie("gatehouse_csrf=a"), "a"));
        let forged = format!("k1.{}", data_encoding::BASE64URL_NOPAD.encode(&[7u8; 64]));
        assert!(!csrf.matches(&parts_with_cookie(&format!("gatehouse_csrf={forged}")), &forged));
        // Under https the cookie is `__Host-` prefixed: the unprefixed one no longer counts.
        let https = Csrf::new(&keyring, true);
        assert!(!https.matches(&parts, &token));
        let prefixed = parts_with_cookie(&format!("__Host-gatehouse_csrf={token}"));
        assert!(https.matches(&prefixed, &token));
        assert!(https.set_cookie(&token).starts_with("__Host-gatehouse_csrf="));
        assert!(https.set_cookie(&token).contains("; Secure"));
    }

    #[test]
    fn a_continue_page_escapes_its_url() {
        let response = Page::continue_to("Continue", "/x?a=1&b=\"<").into_response();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap_or("").contains("form-action 'self'")
        );
    }
}
