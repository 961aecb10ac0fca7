//! The messages, in plain text and HTML, in the recipient's language (`locales/*.ftl`, keys
//! `mail-…`). Every value put into HTML is escaped.

use std::time::Duration;

use crate::i18n::Tr;

/// A message to one user, with the link it carries.
#[derive(Debug, Clone)]
pub enum Message {
    Invitation {
        name: Option<String>,
        organisation: String,
        link: String,
        valid_for: Duration,
    },
    PasswordReset {
        name: Option<String>,
        link: String,
        valid_for: Duration,
    },
    /// A budget step (a threshold, the limit, an override) announced to the tenant's owners.
    Budget {
        organisation: String,
        /// The step, said in the recipient's language.
        summary: crate::i18n::Text,
        link: String,
    },
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Invitation { .. } => "invitation",
            Message::PasswordReset { .. } => "password_reset",
            Message::Budget { .. } => "budget",
        }
    }

    pub fn subject(&self, tr: Tr) -> String {
        match self {
            Message::Invitation { organisation, .. } => tr.arg("mail-invitation-subject", "organisation", organisation),
            Message::PasswordReset { .. } => tr.t("mail-reset-subject"),
            Message::Budget { organisation, .. } => tr.arg("mail-budget-subject", "organisation", organisation),
        }
    }

    fn greeting(tr: Tr, name: &Option<String>) -> String {
        match name {
            Some(name) => tr.arg("mail-hello-name", "name", name),
            None => tr.t("mail-hello"),
        }
    }

    fn parts(&self, tr: Tr) -> (String, String, &str, String, String) {
        match self {
            Message::Invitation { name, organisation, link, valid_for } => (
                Self::greeting(tr, name),
                tr.arg("mail-invitation-lead", "organisation", organisation),
                link,
                tr.arg("mail-invitation-validity", "valid", &describe(tr, *valid_for)),
                tr.t("mail-invitation-footer"),
            ),
            Message::PasswordReset { name, link, valid_for } => (
                Self::greeting(tr, name),
                tr.t("mail-reset-lead"),
                link,
                tr.arg("mail-reset-validity", "valid", &describe(tr, *valid_for)),
                tr.t("mail-reset-footer"),
            ),
            Message::Budget { organisation, summary, link } => (
                Self::greeting(tr, &None),
                summary.said(tr),
                link,
                tr.t("mail-budget-where"),
                tr.arg("mail-budget-footer", "organisation", organisation),
            ),
        }
    }

    pub fn text(&self, tr: Tr) -> String {
        let (greeting, lead, link, validity, footer) = self.parts(tr);
        format!("{greeting}\n\n{lead}\n\n{link}\n\n{validity}\n\n{footer}\n\n-- \nGatehouse\n")
    }

    pub fn html(&self, tr: Tr) -> String {
        let (greeting, lead, link, validity, footer) = self.parts(tr);
        let (greeting, lead, link, validity, footer) =
            (escape(&greeting), escape(&lead), escape(link), escape(&validity), escape(&footer));
        format!(
            "<!doctype html>\n<html lang=\"{}\"><body style=\"font-family: sans-serif; line-height: 1.5\">\n\
             <p>{greeting}</p>\n<p>{lead}</p>\n<p><a href=\"{link}\">{link}</a></p>\n<p>{validity}</p>\n\
             <p style=\"color: #666\">{footer}</p>\n</body></html>\n",
            tr.lang.tag()
        )
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How long a link stays valid, as a message says it: "7 days", "30 minutes", "7 Tage".
pub fn describe(tr: Tr, duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds.is_multiple_of(86_400) {
        tr.count("mail-days", "n", seconds / 86_400)
    } else if seconds.is_multiple_of(3600) {
        tr.count("mail-hours", "n", seconds / 3600)
    } else {
        tr.count("mail-minutes", "n", seconds.div_ceil(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Lang;

    const EN: Tr = Tr { lang: Lang::En };
    const DE: Tr = Tr { lang: Lang::De };

    fn invitation() -> Message {
        Message::Invitation {
            name: Some("<script>x</script>".into()),
            organisation: "A & B".into(),
            link: "https://g.example/invitations/accept?token=t&x=1".into(),
            valid_for: Duration::from_secs(7 * 86_400),
        }
    }

    #[test]
    fn html_escapes_every_value_and_text_carries_the_link() {
        let message = invitation();
        let html = message.html(EN);
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;") && !html.contains("<script>"), "{html}");
        assert!(html.contains("A &amp; B"));
        assert!(html.contains("href=\"https://g.example/invitations/accept?token=t&amp;x=1\""));
        assert!(message.text(EN).contains("https://g.example/invitations/accept?token=t&x=1\n"));
        assert!(message.text(EN).contains("The link works once and for 7 days."), "{}", message.text(EN));
        assert_eq!(message.subject(EN), "You are invited to A & B");
    }

    /// NFR-017: a mail in its recipient's language.
    #[test]
    fn a_german_recipient_reads_german() {
        let message = invitation();
        assert_eq!(message.subject(DE), "Sie sind zu A & B eingeladen");
        let text = message.text(DE);
        assert!(text.starts_with("Hallo <script>x</script>,"), "{text}");
        assert!(text.contains("7 Tage") && text.contains("Wählen Sie Ihr Passwort"), "{text}");
        assert!(message.html(DE).contains("<html lang=\"de\">"));
        let reset = Message::PasswordReset { name: None, link: "l".into(), valid_for: Duration::from_secs(3600) };
        assert_eq!(reset.subject(DE), "Passwort zurücksetzen");
        assert!(reset.text(DE).contains("1 Stunde lang"), "{}", reset.text(DE));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(describe(EN, Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(describe(EN, Duration::from_secs(1800)), "30 minutes");
        assert_eq!(describe(EN, Duration::from_secs(3600)), "1 hour");
        assert_eq!(describe(DE, Duration::from_secs(86_400)), "1 Tag");
        assert_eq!(describe(DE, Duration::from_secs(120)), "2 Minuten");
    }
}
