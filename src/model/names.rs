//! Typed names. Each is checked once when it is built, so code that holds one never re-checks it.

use std::fmt;

/// Why a string is not a valid name; the message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

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
            "{what} `{value}` is not a DNS label: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit"
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
    pub fn parse(value: &str) -> Result<Self, NameError> {
        let lowered = value.trim().to_lowercase();
        let has_domain_dot = lowered.rsplit_once('@').is_some_and(|(_, domain)| domain.contains('.'));
        if email_address::EmailAddress::is_valid(&lowered) && has_domain_dot && lowered == value.trim().to_lowercase() {
            Ok(Self(lowered))
        } else {
            Err(NameError(format!("`{value}` is not a valid email address: write it as name@domain.example")))
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
                "flag key `{value}` is invalid: start with a letter, then up to 127 letters, digits, '_', '.' or '-'"
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
    fn flag_keys_start_with_a_letter() {
        assert!(FlagKey::parse("ai_module.enabled-v2").is_ok());
        for bad in ["", "1flag", "_x", "with space", &"a".repeat(129)] {
            assert!(FlagKey::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
