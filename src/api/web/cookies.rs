//! The browser's cookies, read and written by the `cookie` crate: the session, the CSRF token, the
//! federated sign-in's binding and the language choice.

use axum::http::{HeaderMap, header};
use cookie::{Cookie, SameSite};

/// The name of a session's cookie: under https with the `__Host-` prefix, which only this host can
/// set (a sibling subdomain can neither plant nor shadow it), as the CSRF cookie's.
pub fn host_only(name: &str, secure: bool) -> String {
    if secure { format!("__Host-{name}") } else { name.to_owned() }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

/// A `Set-Cookie` value: HTTP only, same-site `Lax` (sent on the top-level navigations that come
/// back from a relying party or an identity provider), `Secure` when served over https.
pub fn set(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure);
    if let Some(seconds) = max_age {
        cookie = cookie.max_age(cookie::time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX)));
    }
    cookie.build().to_string()
}

/// A `Set-Cookie` value that removes cookie `name`.
pub fn clear(name: &str, secure: bool) -> String {
    set(name, "", secure, Some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name_from_every_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; gatehouse_csrf=xyz; gatehouse_csrf_other=no".parse().expect("value"));
        headers.append(header::COOKIE, "gatehouse_lang=de".parse().expect("value"));
        assert_eq!(read(&headers, "gatehouse_csrf").as_deref(), Some("xyz"));
        assert_eq!(read(&headers, "gatehouse_lang").as_deref(), Some("de"));
        assert_eq!(read(&headers, "missing"), None);
    }

    #[test]
    fn a_set_cookie_is_http_only_lax_on_the_whole_site_and_secure_under_https() {
        let cookie = set("gatehouse_session", "v", true, Some(600));
        for part in ["gatehouse_session=v", "HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=600"] {
            assert!(cookie.contains(part), "{part} in {cookie}");
        }
        assert!(!set("a", "b", false, None).contains("Secure"));
        assert!(clear("a", false).contains("Max-Age=0"));
    }

    #[test]
    fn a_session_cookie_is_host_only_under_https() {
        assert_eq!(host_only("gatehouse_session", true), "__Host-gatehouse_session");
        assert_eq!(host_only("gatehouse_session", false), "gatehouse_session");
        let set = set(&host_only("gatehouse_staff", true), "v", true, None);
        assert!(
            set.starts_with("__Host-gatehouse_staff=v") && set.contains("Secure") && set.contains("Path=/"),
            "{set}"
        );
        assert!(!set.contains("Domain"), "{set}");
    }
}
