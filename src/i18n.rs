//! The two languages of every page and mail (NFR-017): English and German message catalogues in
//! Fluent files a translator edits (`locales/*.ftl`, embedded in the binary). A page's language is
//! the browser's (`api::web::i18n`); a mail's is its recipient's (`users.language`). API error codes
//! and their messages stay English.

use std::sync::LazyLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

/// A language Gatehouse speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::De];

    /// The BCP 47 tag, as in `<html lang>`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    /// The language's own name, as the switch shows it.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::De => "Deutsch",
        }
    }

    pub fn parse(tag: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|lang| lang.tag() == tag)
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("../locales/en.ftl"),
            Lang::De => include_str!("../locales/de.ftl"),
        }
    }
}

type Bundle = FluentBundle<FluentResource>;

/// The catalogues, parsed once. A damaged file keeps what parsed (the unit tests refuse damage).
static CATALOGUES: LazyLock<[Bundle; 2]> = LazyLock::new(|| Lang::ALL.map(catalogue));

fn catalogue(lang: Lang) -> Bundle {
    let resource = FluentResource::try_new(lang.source().to_owned()).unwrap_or_else(|(partial, _)| partial);
    let id = lang.tag().parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // No Unicode isolation marks around arguments: pages are HTML, where they only get in the way.
    bundle.set_use_isolating(false);
    // A key defined twice keeps its first text; the unit tests refuse duplicates.
    let _ = bundle.add_resource(resource);
    bundle
}

/// A page's translator: every text a template shows comes through here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tr {
    pub lang: Lang,
}

impl Tr {
    pub fn new(lang: Lang) -> Tr {
        Tr { lang }
    }

    /// The message `key`. A missing key shows itself, so it is seen (and the tests fail).
    pub fn t(&self, key: &str) -> String {
        self.format(key, None)
    }

    /// The message `key` with one argument.
    pub fn arg(&self, key: &str, name: &str, value: &str) -> String {
        self.args(key, &[(name, value)])
    }

    /// The message `key` with a number `name`, which may choose its plural form.
    pub fn count(&self, key: &str, name: &str, n: u64) -> String {
        let mut args = FluentArgs::new();
        args.set(name.to_string(), n);
        self.format(key, Some(&args))
    }

    /// The message `key` with its arguments.
    pub fn args(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut args = FluentArgs::new();
        for (name, value) in values {
            args.set(name.to_string(), value.to_string());
        }
        self.format(key, Some(&args))
    }

    fn format(&self, key: &str, args: Option<&FluentArgs<'_>>) -> String {
        let bundle = &CATALOGUES[self.lang as usize];
        let Some(pattern) = bundle.get_message(key).and_then(|message| message.value()) else {
            return key.to_owned();
        };
        let mut errors = Vec::new();
        bundle.format_pattern(pattern, args, &mut errors).into_owned()
    }
}

/// A message to be said later, in the language of whoever reads it (a mail to each owner in
/// theirs): its key and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub key: &'static str,
    pub args: Vec<(&'static str, String)>,
}

impl Text {
    pub fn new(key: &'static str, args: Vec<(&'static str, String)>) -> Text {
        Text { key, args }
    }

    /// The message in `tr`'s language.
    pub fn said(&self, tr: Tr) -> String {
        let args: Vec<(&str, &str)> = self.args.iter().map(|(name, value)| (*name, value.as_str())).collect();
        tr.args(self.key, &args)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use fluent_bundle::FluentResource;

    use super::*;

    fn keys(lang: Lang) -> Vec<String> {
        let resource = FluentResource::try_new(lang.source().to_owned())
            .unwrap_or_else(|(_, errors)| panic!("locales/{}.ftl does not parse: {errors:?}", lang.tag()));
        resource
            .entries()
            .filter_map(|entry| match entry {
                fluent_syntax::ast::Entry::Message(message) => Some(message.id.name.to_owned()),
                _ => None,
            })
            .collect()
    }

    /// NFR-017: every message exists in both languages, once.
    #[test]
    fn both_catalogues_have_the_same_keys_each_once() {
        let english = keys(Lang::En);
        let german = keys(Lang::De);
        for (lang, list) in [(Lang::En, &english), (Lang::De, &german)] {
            let unique: BTreeSet<_> = list.iter().collect();
            assert_eq!(unique.len(), list.len(), "a key is defined twice in locales/{}.ftl", lang.tag());
        }
        let english: BTreeSet<_> = english.into_iter().collect();
        let german: BTreeSet<_> = german.into_iter().collect();
        assert_eq!(english.difference(&german).collect::<Vec<_>>(), Vec::<&String>::new(), "missing in German");
        assert_eq!(german.difference(&english).collect::<Vec<_>>(), Vec::<&String>::new(), "missing in English");
    }

    /// Every key a template or a page's code names is in the catalogue (a typo would show the key).
    #[test]
    fn every_key_the_pages_use_exists() {
        let english: BTreeSet<_> = keys(Lang::En).into_iter().collect();
        let mut sources = Vec::new();
        for folder in ["templates", "src/api", "src/mail", "src/budget", "src/sso"] {
            collect(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder), &mut sources);
        }
        let mut used = 0;
        for (path, text) in &sources {
            for key in used_keys(text) {
                used += 1;
                assert!(english.contains(&key), "{}: `{key}` is not in locales/en.ftl", path.display());
            }
        }
        assert!(used > 50, "the pages name their messages through `t(…)` and `arg(…)` ({used} found)");
    }

    fn collect(dir: std::path::PathBuf, into: &mut Vec<(std::path::PathBuf, String)>) {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let path = entry.path();
            if path.is_dir() {
                collect(path, into);
            } else if path.extension().is_some_and(|e| e == "html" || e == "rs") && !path.ends_with("src/i18n.rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                into.push((path, text));
            }
        }
    }

    /// The first argument of each `t("…")` / `arg("…"` call.
    fn used_keys(text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for call in [".t(\"", ".arg(\"", ".args(\"", ".count(\"", "Text::new(\"", "said(\""] {
            let mut rest = text;
            while let Some(start) = rest.find(call) {
                rest = &rest[start + call.len()..];
                if let Some(end) = rest.find('"') {
                    found.push(rest[..end].to_owned());
                }
            }
        }
        found
    }

    #[test]
    fn arguments_are_put_in_plainly() {
        let german = Tr::new(Lang::De);
        assert_eq!(
            german.arg("link-done", "email", "a@b.example"),
            "Ihr Passwort ist gesetzt. Sie können sich jetzt als a@b.example anmelden."
        );
        assert_eq!(Tr::new(Lang::En).t("no-such-key"), "no-such-key");
    }
}
