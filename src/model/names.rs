//! Typed names. Each is checked once when it is built, so code that holds one never re-checks it.

use std::fmt;

/// Why a string is not a valid name; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

/// How much of a refused value an error message quotes: a message must not echo kilobytes back.
const SHOWN_CHARS: usize = 64;

/// `value` as an error message quotes it: control characters escaped (a NUL byte shows as `\u{0}`),
/// cut after 64 characters with the full length noted.
pub fn shown(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars().take(SHOWN_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    let length = value.chars().count();
    if length > SHOWN_CHARS {
        out.push_str(&format!("… ({length} characters)"));
    }
    out
}

/// RFC 1123 label: what Kubernetes, DNS and URLs all accept without escaping.
fn dns_label(what: &str, value: &str) -> Result<(), NameError> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(NameError(format!(
            "{what} `{}` is not a DNS label: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit",
            shown(value)
        )))
    }
}

macro_rules! label_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, NameError> {
                dns_label($what, value)?;
                Ok(Self(value.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_type!(
    /// A tenant's domain id (`acme`): unique, stable, used in URLs.
    TenantName,
    "tenant name"
);
label_type!(
    /// A plan's name (`pro`).
    PlanName,
    "plan name"
);
label_type!(
    /// A registered application's name (`billing-app`).
    AppName,
    "application name"
);

/// An email address, lower-cased so that uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit on a path (256) less its angle brackets.
    pub const MAX_LEN: usize = 254;

    pub fn parse(value: &str) -> Result<Self, NameError> {
        let trimmed = value.trim();
        if trimmed.len() > Self::MAX_LEN {
            return Err(NameError(format!(
                "`{}` is not a valid email address: it is longer than {} characters",
                shown(value),
                Self::MAX_LEN
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(NameError(format!(
                "`{}` is not a valid email address: it contains a control character",
                shown(value)
            )));
        }
        let lowered = trimmed.to_lowercase();
        let has_domain_dot = lowered.rsplit_once('@').is_some_and(|(_, domain)| domain.contains('.'));
        if email_address::EmailAddress::is_valid(&lowered) && has_domain_dot && lowered == value.trim().to_lowercase() {
            Ok(Self(lowered))
        } else {
            Err(NameError(format!("`{}` is not a valid email address: write it as name@domain.example", shown(value))))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A feature flag's key (`ai_module_enabled`), as applications and OpenFeature clients name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct FlagKey(String);

impl FlagKey {
    pub const PATTERN: &'static str = "^[a-zA-Z][a-zA-Z0-9_.-]{0,127}$";

    pub fn parse(value: &str) -> Result<Self, NameError> {
        let mut bytes = value.bytes();
        let valid = value.len() <= 128
            && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError(format!(
                "flag key `{}` is invalid: start with a letter, then up to 127 letters, digits, '_', '.' or '-'",
                shown(value)
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FlagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The public id of an API key (`k3Xr9TQa0bZc`): 12 letters and digits, as in
/// `gatehouse_<key id>_<secret>`. Lists, paths and audit rows name a key by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    pub const LEN: usize = 12;

    pub fn parse(value: &str) -> Result<Self, NameError> {
        if value.len() == Self::LEN && value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError(format!(
                "`{}` is not a key id: a key id is {} letters and digits, as in gatehouse_<key id>_…",
                shown(value),
                Self::LEN
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name for people (`Billing`, a key's `ci deploy`): 1 to 200 characters, not blank, no control
/// characters, as display names in the config repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(value: &str) -> Result<Self, NameError> {
        let valid = !value.trim().is_empty()
            && value.chars().count() <= Self::MAX_CHARS
            && !value.chars().any(char::is_control);
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError(format!(
                "`{}` is not a display name: use 1 to {} characters, not all blank, no control characters",
                shown(value),
                Self::MAX_CHARS
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_must_be_dns_labels() {
        assert!(TenantName::parse("acme-2").is_ok());
        for bad in ["", "Acme", "-acme", "acme-", "ac_me", &"a".repeat(64)] {
            assert!(TenantName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn emails_are_lower_cased_and_need_a_domain() {
        assert_eq!(Email::parse("Alice@Acme.Example").map(|e| e.0), Ok("alice@acme.example".into()));
        for bad in ["alice", "alice@", "@acme.example", "alice@localhost", "a b@acme.example"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn emails_have_at_most_254_characters_and_no_control_characters() {
        // The longest local part (64) and domain labels (63 each) that add up to 254.
        let longest = format!("{}@{}.{}.{}.example", "a".repeat(64), "b".repeat(63), "c".repeat(63), "d".repeat(53));
        assert_eq!(longest.len(), 254);
        assert!(Email::parse(&longest).is_ok());
        let long = format!("{}@acme.example", "a".repeat(3000));
        let refused = Email::parse(&long).expect_err("3 KB");
        assert!(refused.0.len() < 200, "the message quotes a bounded part: {}", refused.0);
        for bad in ["a\0b@acme.example", "\0", "a@acme.example\u{7}", "a\nb@acme.example"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Email::parse("a\0b@acme.example").expect_err("NUL").0.contains("\\u{0}"), "the NUL is shown escaped");
    }

    #[test]
    fn key_ids_are_twelve_letters_and_digits() {
        assert!(KeyId::parse("k3Xr9TQa0bZc").is_ok());
        for bad in ["", "k3Xr9TQa0bZ", "k3Xr9TQa0bZc0", "k3Xr9TQa0b-c", "k3Xr9TQa0b\0c"] {
            assert!(KeyId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn display_names_are_1_to_200_characters_without_control_characters() {
        assert!(DisplayName::parse("Billing · Zürich").is_ok());
        assert!(DisplayName::parse(&"é".repeat(200)).is_ok());
        for bad in ["", "   ", "a\0b", "tab\there", &"x".repeat(201)] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn a_refused_value_is_quoted_escaped_and_cut() {
        assert_eq!(shown("acme"), "acme");
        assert_eq!(shown("a\0b"), "a\\u{0}b");
        let long = shown(&"x".repeat(10_000));
        assert!(long.starts_with(&"x".repeat(64)) && long.ends_with("… (10000 characters)"), "{long}");
    }

    #[test]
    fn flag_keys_start_with_a_letter() {
        assert!(FlagKey::parse("ai_module.enabled-v2").is_ok());
        for bad in ["", "1flag", "_x", "with space", &"a".repeat(129)] {
            assert!(FlagKey::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
