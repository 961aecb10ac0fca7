//! A tenant's identity provider settings as an administrator sets them through the API or a
//! console: the rules they must pass before they are stored (pure; the database rules, such as a
//! domain another tenant uses, are the store's).

use crate::model::{Email, Role, shown};

/// Settings that passed `check`, normalized: the issuer and client id trimmed, the domains in
/// lower case without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Exactly as given (trimmed): it must equal the provider's `iss`, trailing slash and all.
    pub issuer: String,
    pub client_id: String,
    pub domains: Vec<String>,
    /// The role of users created just in time; `None`: unknown emails are refused.
    pub jit_role: Option<Role>,
}

/// Checks the settings, or says what is wrong with which field.
pub fn check(issuer: &str, client_id: &str, domains: &[String], jit_role: Option<&str>) -> Result<Settings, String> {
    let issuer = issuer.trim().to_owned();
    for (field, value) in [("issuer", issuer.as_str()), ("clientId", client_id)] {
        if value.chars().any(char::is_control) {
            return Err(format!("{field} must not contain control characters"));
        }
    }
    url::Url::parse(&issuer).map_err(|e| format!("issuer `{issuer}` is not a URL ({e})"))?;
    if client_id.trim().is_empty() || client_id.len() > 200 {
        return Err("clientId must be 1 to 200 characters".into());
    }
    if domains.is_empty() || domains.len() > 50 {
        return Err("list 1 to 50 email domains".into());
    }
    let mut normalized: Vec<String> = Vec::new();
    for domain in domains {
        let domain = domain.trim().to_lowercase();
        if Email::parse(&format!("someone@{domain}")).is_err() || !domain.contains('.') {
            return Err(format!("`{}` is not an email domain", shown(&domain)));
        }
        if !normalized.contains(&domain) {
            normalized.push(domain);
        }
    }
    let jit_role = match jit_role {
        None => None,
        Some("admin") => Some(Role::Admin),
        Some("user") => Some(Role::User),
        Some(other) => {
            return Err(format!(
                "jitRole `{}` is not `admin` or `user` (owners are never made just in time)",
                shown(other)
            ));
        }
    };
    Ok(Settings { issuer, client_id: client_id.trim().to_owned(), domains: normalized, jit_role })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(list: &[&str]) -> Vec<String> {
        list.iter().map(|d| (*d).to_owned()).collect()
    }

    #[test]
    fn valid_settings_are_trimmed_and_their_domains_normalized() {
        let settings =
            check(" https://idp.example/ ", " app ", &domains(&["Acme.Example", "acme.example"]), Some("user"))
                .expect("valid");
        assert_eq!(
            settings,
            Settings {
                issuer: "https://idp.example/".into(),
                client_id: "app".into(),
                domains: domains(&["acme.example"]),
                jit_role: Some(Role::User),
            }
        );
    }

    #[test]
    fn each_field_is_refused_by_name() {
        let ok = domains(&["acme.example"]);
        assert!(check("not a url", "app", &ok, None).expect_err("issuer").starts_with("issuer"));
        assert!(check("https://idp.example", "a\u{7}", &ok, None).expect_err("control").starts_with("clientId"));
        assert!(check("https://idp.example", " ", &ok, None).expect_err("empty").starts_with("clientId"));
        assert!(check("https://idp.example", "app", &[], None).expect_err("no domains").contains("1 to 50"));
        let localhost = check("https://idp.example", "app", &domains(&["localhost"]), None);
        assert!(localhost.expect_err("no dot").contains("not an email domain"));
        let owner = check("https://idp.example", "app", &ok, Some("owner"));
        assert!(owner.expect_err("owner").contains("never made just in time"));
    }
}
