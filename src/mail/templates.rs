//! The messages, in plain text and HTML. Every value put into HTML is escaped.

use std::time::Duration;

/// A message to one user, with the link it carries.
#[derive(Debug, Clone)]
pub enum Message {
    Invitation {
        name: Option<String>,
        organisation: String,
        link: String,
        valid_for: String,
    },
    PasswordReset {
        name: Option<String>,
        link: String,
        valid_for: String,
    },
    /// A budget step (a threshold, the limit, an override) announced to the tenant's owners.
    Budget {
        organisation: String,
        summary: String,
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

    pub fn subject(&self) -> String {
        match self {
            Message::Invitation { organisation, .. } => format!("You are invited to {organisation}"),
            Message::PasswordReset { .. } => "Reset your password".to_owned(),
            Message::Budget { organisation, .. } => format!("The budget of {organisation}"),
        }
    }

    fn greeting(name: &Option<String>) -> String {
        match name {
            Some(name) => format!("Hello {name},"),
            None => "Hello,".to_owned(),
        }
    }

    fn parts(&self) -> (String, String, &str, String, String) {
        match self {
            Message::Invitation { name, organisation, link, valid_for } => (
                Self::greeting(name),
                format!("You have been invited to {organisation}. Choose your password to accept the invitation:"),
                link,
                format!("The link works once and for {valid_for}."),
                "If you did not expect this invitation, ignore this message.".to_owned(),
            ),
            Message::PasswordReset { name, link, valid_for } => (
                Self::greeting(name),
                "Someone asked to reset the password of your account. Choose a new password here:".to_owned(),
                link,
                format!("The link works once and for {valid_for}. Every session of your account ends when you use it."),
                "If you did not ask for this, ignore this message: your password stays as it is.".to_owned(),
            ),
            Message::Budget { organisation, summary, link } => (
                Self::greeting(&None),
                summary.clone(),
                link,
                "The budget's state, usage and overrides are at the address above.".to_owned(),
                format!("You receive this as an owner of {organisation}."),
            ),
        }
    }

    pub fn text(&self) -> String {
        let (greeting, lead, link, validity, footer) = self.parts();
        format!("{greeting}\n\n{lead}\n\n{link}\n\n{validity}\n\n{footer}\n\n-- \nGatehouse\n")
    }

    pub fn html(&self) -> String {
        let (greeting, lead, link, validity, footer) = self.parts();
        let (greeting, lead, link, validity, footer) =
            (escape(&greeting), escape(&lead), escape(link), escape(&validity), escape(&footer));
        format!(
            "<!doctype html>\n<html><body style=\"font-family: sans-serif; line-height: 1.5\">\n\
             <p>{greeting}</p>\n<p>{lead}</p>\n<p><a href=\"{link}\">{link}</a></p>\n<p>{validity}</p>\n\
             <p style=\"color: #666\">{footer}</p>\n</body></html>\n"
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

/// How long a link stays valid, as a message says it: "7 days", "30 minutes".
pub fn describe(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (n, unit) = if seconds.is_multiple_of(86_400) {
        (seconds / 86_400, "day")
    } else if seconds.is_multiple_of(3600) {
        (seconds / 3600, "hour")
    } else {
        (seconds.div_ceil(60), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_every_value_and_text_carries_the_link() {
        let message = Message::Invitation {
            name: Some("<script>x</script>".into()),
            organisation: "A & B".into(),
            link: "https://g.example/invitations/accept?token=t&x=1".into(),
            valid_for: "7 days".into(),
        };
        let html = message.html();
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;") && !html.contains("<script>"), "{html}");
        assert!(html.contains("A &amp; B"));
        assert!(html.contains("href=\"https://g.example/invitations/accept?token=t&amp;x=1\""));
        assert!(message.text().contains("https://g.example/invitations/accept?token=t&x=1\n"));
        assert_eq!(message.subject(), "You are invited to A & B");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(describe(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(describe(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(describe(Duration::from_secs(3600)), "1 hour");
    }
}
