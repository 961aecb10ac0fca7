//! The web layer every browser page shares: one layout (askama, `templates/`), one stylesheet and
//! htmx (vendored, pinned, served from the binary: `assets`), the security headers, the cookies
//! (`cookies`), one CSRF layer for every form post (`csrf`), and the page's language (`i18n`).
//! Every essential action is a real link or form; htmx only enhances. An htmx request
//! (`HX-Request`) gets the page's fragment without the layout, and every page varies on it.

pub mod assets;
pub mod charts;
pub mod cookies;
pub mod csrf;
pub mod i18n;
pub mod language;
pub mod templates;

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, request::Parts};
use axum::response::{Html, IntoResponse, Response};

pub use csrf::Csrf;
pub use i18n::{Lang, Tr};
use templates::Body;

use super::AppState;

/// The browser's Gatehouse session: the refresh token of a session, never readable by scripts
/// (`__Host-` prefixed under https: `cookies::host_only`).
pub const SESSION_COOKIE: &str = "gatehouse_session";
/// Binds a federated sign-in to the browser that started it (ten minutes).
pub const SSO_COOKIE: &str = "gatehouse_sso";

/// Whether the pages are served over https (their cookies are then `Secure`).
pub fn is_https(state: &AppState) -> bool {
    state.identity.settings.public_url.starts_with("https://")
}

/// A page: a title, its body (HTML from a template), a status, and the cookies to set.
pub struct Page {
    pub title: String,
    pub body: String,
    pub status: StatusCode,
    pub cookies: Vec<String>,
    /// Where to go next, without scripts: a `meta refresh` and a link (see `Browser::continue_to`).
    pub refresh_to: Option<String>,
    /// A console's navigation (HTML); a console's page is wide.
    pub nav: Option<String>,
}

impl Page {
    pub fn new(title: &str, body: String) -> Page {
        Page { title: title.to_owned(), body, status: StatusCode::OK, cookies: Vec::new(), refresh_to: None, nav: None }
    }

    pub fn status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }

    pub fn cookie(mut self, cookie: String) -> Page {
        self.cookies.push(cookie);
        self
    }

    /// A console's page: `nav` above the content, which takes the window's width.
    pub fn in_console(mut self, nav: String) -> Page {
        self.nav = Some(nav);
        self
    }
}

/// The browser asking for a page: its language, the path it is on (for the language switch), its
/// CSRF token (minted now if it has none: the page then sets the cookie), and whether htmx asked.
pub struct Browser {
    pub tr: Tr,
    path: String,
    csrf: String,
    set_csrf: Option<String>,
    fragment: bool,
    pub secure: bool,
}

impl Browser {
    pub fn of(state: &AppState, parts: &Parts) -> Browser {
        let tokens = Csrf::of(state);
        let (csrf, set_csrf) = match tokens.existing(&parts.headers) {
            Some(token) => (token, None),
            None => {
                let token = tokens.mint();
                let cookie = tokens.set_cookie(&token);
                (token, Some(cookie))
            }
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Browser {
            tr: Tr::new(Lang::of(&parts.headers)),
            path,
            csrf,
            set_csrf,
            fragment: is_fragment_request(&parts.headers),
            secure: is_https(state),
        }
    }

    /// The token this page's forms repeat.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// A page whose only job is to move on to `url` (on this origin, or a registered redirect URI
    /// or identity provider). A redirect answering a form post would be checked against the
    /// form's `form-action` policy, which allows only this origin; a new navigation is not.
    pub fn continue_to(&self, title: &str, url: &str) -> Page {
        let body = templates::Continue { t: self.tr, url }.html();
        Page { refresh_to: Some(url.to_owned()), ..Page::new(title, body) }
    }

    /// A page of one problem, status 400 unless changed.
    pub fn problem_page(&self, title: &str, problem: &str) -> Page {
        let body = templates::Message { alert: Some(problem.to_owned()), text: None, link: None };
        Page::new(title, body.html()).status(StatusCode::BAD_REQUEST)
    }

    /// The page "something went wrong on our side" (the cause is logged by the caller).
    pub fn failed(&self) -> Response {
        let tr = self.tr;
        let body = templates::Message {
            alert: None,
            text: Some(tr.t("failed-text")),
            link: Some(("/login", tr.t("login-sign-in"))),
        };
        self.render(Page::new(&tr.t("failed-title"), body.html()).status(StatusCode::INTERNAL_SERVER_ERROR))
    }

    /// `page` in the layout (or as a fragment for htmx), with the security headers and cookies.
    pub fn render(&self, page: Page) -> Response {
        let html = if self.fragment && page.refresh_to.is_none() {
            templates::Fragment { title: &page.title, body: &page.body }.html()
        } else {
            templates::Layout {
                t: self.tr,
                title: &page.title,
                body: &page.body,
                refresh_to: page.refresh_to.as_deref(),
                style: &assets::STYLE.url(),
                script: &assets::HTMX.url(),
                languages: Lang::ALL.iter().map(|lang| (*lang, self.switch_to(*lang))).collect(),
                nav: page.nav.as_deref(),
                wide: page.nav.is_some(),
            }
            .html()
        };
        let mut response = (page.status, Html(html)).into_response();
        let headers = response.headers_mut();
        secure(headers);
        headers.insert(header::VARY, HeaderValue::from_static("HX-Request, Accept-Language, Cookie"));
        for cookie in self.set_csrf.iter().chain(&page.cookies) {
            if let Ok(value) = HeaderValue::from_str(cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// The link that switches the pages to `lang` and comes back here.
    fn switch_to(&self, lang: Lang) -> String {
        let back: String = url::form_urlencoded::byte_serialize(self.path.as_bytes()).collect();
        format!("/language?lang={}&return_to={back}", lang.tag())
    }
}

impl FromRequestParts<AppState> for Browser {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Browser, Infallible> {
        Ok(Browser::of(state, parts))
    }
}

/// An htmx request that swaps part of a page (a boosted navigation wants the whole page).
fn is_fragment_request(headers: &HeaderMap) -> bool {
    let set = |name: &str| headers.get(name).is_some_and(|v| v.as_bytes() == b"true");
    set("hx-request") && !set("hx-boosted")
}

/// The headers of every page: never cached (pages carry tokens and session state), never framed,
/// scripts and styles only from this server (htmx, the stylesheet), forms post only here, no
/// Referer leaking a token in the URL.
pub fn secure(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// A page route's error that is not a page (an extractor's rejection: a path that is not UTF-8, a
/// query that does not parse) becomes one, in the browser's language, with the same status: a
/// person gets a page, never a JSON envelope.
pub async fn pages_only(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let browser = Browser::of(&state, &parts);
    let response = next.run(axum::extract::Request::from_parts(parts, body)).await;
    let status = response.status();
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html") || t.starts_with("text/csv"));
    if !(status.is_client_error() || status.is_server_error()) || is_page {
        return response;
    }
    let tr = browser.tr;
    let problem = if status.is_server_error() { tr.t("failed-text") } else { tr.t("problem-bad-address") };
    browser.render(browser.problem_page(&tr.t("problem-title"), &problem).status(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_swapping_htmx_request_is_answered_with_a_fragment() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(is_fragment_request(&headers(&[("hx-request", "true")])));
        assert!(!is_fragment_request(&headers(&[("hx-request", "true"), ("hx-boosted", "true")])));
        assert!(!is_fragment_request(&headers(&[])));
    }

    #[test]
    fn the_layout_names_its_language_and_escapes_what_it_is_given() {
        let html = templates::Layout {
            t: Tr::new(Lang::De),
            title: "<Titel>",
            body: "<p>ok</p>",
            refresh_to: Some("/x?a=1&b=\"<"),
            style: "/assets/style.css",
            script: "/assets/htmx.min.js",
            languages: vec![(Lang::En, "/language?lang=en".into()), (Lang::De, "/language?lang=de".into())],
            nav: None,
            wide: false,
        }
        .html();
        assert!(html.contains("<html lang=\"de\">"), "{html}");
        assert!(html.contains("Titel") && !html.contains("<Titel>"), "the title is escaped: {html}");
        assert!(html.contains("url=/x?a=1&#38;b=&#34;&#60;\">"), "the URL is escaped: {html}");
        assert!(html.contains("<p>ok</p>"), "the body is HTML already: {html}");
        assert!(html.contains("href=\"/language?lang=en\""), "{html}");
        assert!(!html.contains("href=\"/language?lang=de\""), "the current language is no link: {html}");
    }
}
