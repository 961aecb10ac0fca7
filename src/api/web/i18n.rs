//! A page's language: the one the browser chose with the page's switch (a cookie), else the best
//! of its `Accept-Language`, else English. The catalogues are `crate::i18n`'s.

use axum::http::{HeaderMap, header};

pub use crate::i18n::{Lang, Tr};

/// The cookie that remembers the language switch.
pub const LANGUAGE_COOKIE: &str = "gatehouse_lang";

impl Lang {
    /// The browser's language: its remembered choice, else its `Accept-Language`, else English.
    pub fn of(headers: &HeaderMap) -> Lang {
        let chosen = super::cookies::read(headers, LANGUAGE_COOKIE).and_then(|tag| Lang::parse(&tag));
        chosen.or_else(|| accepted(headers)).unwrap_or(Lang::En)
    }

    /// The language a request asks for in its `Accept-Language`, if it names one Gatehouse speaks.
    pub fn accepted(headers: &HeaderMap) -> Option<Lang> {
        accepted(headers)
    }
}

fn accepted(headers: &HeaderMap) -> Option<Lang> {
    let header = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    let tags: Vec<&str> = Lang::ALL.iter().map(|lang| lang.tag()).collect();
    accept_language::intersection(header, &tags).first().and_then(|tag| Lang::parse(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_the_remembered_choice_else_the_best_accepted_else_english() {
        let headers = |pairs: &[(header::HeaderName, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(name.clone(), value.parse().expect("a header value"));
            }
            map
        };
        assert_eq!(Lang::of(&headers(&[])), Lang::En);
        assert_eq!(Lang::of(&headers(&[(header::ACCEPT_LANGUAGE, "de-DE,de;q=0.9,en;q=0.8")])), Lang::De);
        assert_eq!(Lang::of(&headers(&[(header::ACCEPT_LANGUAGE, "fr-FR, en;q=0.5, de;q=0.7")])), Lang::De);
        assert_eq!(Lang::of(&headers(&[(header::ACCEPT_LANGUAGE, "fr")])), Lang::En);
        assert_eq!(Lang::accepted(&headers(&[])), None);
        let chosen = headers(&[(header::ACCEPT_LANGUAGE, "de"), (header::COOKIE, "a=1; gatehouse_lang=en")]);
        assert_eq!(Lang::of(&chosen), Lang::En);
    }
}
