//! How one identity provider is trusted, in the style of the Kubernetes OIDC authenticator: issuer,
//! audience, which claims name the person and their groups, which claims must hold, which
//! algorithms may sign, and which groups are bound to which platform role.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::model::PlatformRole;

/// A setting that cannot work; `serve` refuses to start with it rather than refuse every token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// Exactly as the provider's tokens and discovery document name it.
    pub issuer_url: String,
    /// The client id tokens must be issued to (`aud`).
    pub audience: String,
    /// The claim that names the person in the audit log (`sub` by default).
    pub username_claim: String,
    /// The claim that lists the person's groups: an array of strings or a single string.
    pub groups_claim: String,
    pub required_claims: Vec<RequiredClaim>,
    pub signing_algs: Vec<SigningAlg>,
    pub group_bindings: Vec<GroupBinding>,
    /// How far the provider's clock and ours may disagree when checking `exp`, `nbf` and `iat`.
    pub clock_leeway: Duration,
    /// At most one fetch of the provider's keys in this window, however many tokens name an
    /// unknown key.
    pub jwks_min_interval: Duration,
}

impl OidcSettings {
    /// Whether the settings can work at all; names the flag that is wrong.
    pub fn check(&self) -> Result<(), SettingsError> {
        check_url("--oidc-issuer-url", &self.issuer_url)?;
        if self.audience.trim().is_empty() {
            return Err(SettingsError("--oidc-audience is empty: set it to the client id tokens are issued to".into()));
        }
        for (flag, claim) in
            [("--oidc-username-claim", &self.username_claim), ("--oidc-groups-claim", &self.groups_claim)]
        {
            if claim.trim().is_empty() {
                return Err(SettingsError(format!("{flag} is empty")));
            }
        }
        if self.jwks_min_interval < std::time::Duration::from_secs(1) {
            return Err(SettingsError(
                "--oidc-jwks-min-interval must be at least 1s: it bounds how often tokens can make Gatehouse fetch the provider's keys".into(),
            ));
        }
        if self.signing_algs.is_empty() {
            return Err(SettingsError("--oidc-signing-algs is empty: name at least one, such as RS256".into()));
        }
        if self.group_bindings.is_empty() {
            return Err(SettingsError(
                "no --oidc-group-binding: every token would be refused; bind a group, such as \
                 --oidc-group-binding platform-admins=operator"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The role the groups give: operator wins over auditor; `None` when no group is bound.
    pub fn role_of<'a>(&self, groups: impl IntoIterator<Item = &'a str> + Clone) -> Option<PlatformRole> {
        let bound = |role: PlatformRole| {
            groups.clone().into_iter().any(|g| self.group_bindings.iter().any(|b| b.role == role && b.group == g))
        };
        [PlatformRole::Operator, PlatformRole::Auditor].into_iter().find(|&role| bound(role))
    }
}

/// `https://…`, or `http://` on a loopback host (127.0.0.1, ::1, localhost) for local set-ups and tests:
/// signing keys fetched in the clear from elsewhere could be swapped by anyone on the path.
pub(crate) fn check_url(what: &str, value: &str) -> Result<url::Url, SettingsError> {
    let url = url::Url::parse(value).map_err(|e| SettingsError(format!("{what} `{value}` is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if crate::model::is_loopback(&url) => {}
        "http" => return Err(SettingsError(format!("{what} `{value}` must use https (http only on a loopback host)"))),
        other => return Err(SettingsError(format!("{what} `{value}` has the scheme `{other}`, not https"))),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(SettingsError(format!("{what} `{value}` must not have a query or fragment")));
    }
    Ok(url)
}

/// `key=value`: the token's claim `key` must be the string `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredClaim {
    pub claim: String,
    pub value: String,
}

/// `group=operator|auditor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupBinding {
    pub group: String,
    pub role: PlatformRole,
}

/// An asymmetric signature algorithm: the provider signs with its private key, Gatehouse checks
/// with the published public one. `none` and the HMAC family are never accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningAlg(pub(crate) Algorithm);

impl SigningAlg {
    pub const ACCEPTED: &'static [&'static str] =
        &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

    pub fn name(self) -> &'static str {
        match self.0 {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => "HS",
        }
    }

    /// The algorithm named `name` if it is accepted at all (whatever the settings allow).
    pub fn accepted(name: &str) -> Option<SigningAlg> {
        let alg = match name {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "EdDSA" => Algorithm::EdDSA,
            _ => return None,
        };
        Some(SigningAlg(alg))
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `--oidc-signing-algs` values.
pub fn parse_signing_alg(value: &str) -> Result<SigningAlg, SettingsError> {
    let value = value.trim();
    if let Some(alg) = SigningAlg::accepted(value) {
        return Ok(alg);
    }
    let why = if value.eq_ignore_ascii_case("none") {
        "`none` means unsigned tokens, which are never accepted".to_owned()
    } else if value.to_ascii_uppercase().starts_with("HS") {
        format!("{value} is symmetric (the provider's client secret would sign and check), never accepted")
    } else {
        format!("`{value}` is not a signature algorithm Gatehouse knows")
    };
    Err(SettingsError(format!("{why}; accepted: {}", SigningAlg::ACCEPTED.join(", "))))
}

/// `--oidc-required-claim` values.
pub fn parse_required_claim(value: &str) -> Result<RequiredClaim, SettingsError> {
    match value.split_once('=') {
        Some((claim, required)) if !claim.trim().is_empty() => {
            Ok(RequiredClaim { claim: claim.trim().to_owned(), value: required.to_owned() })
        }
        _ => Err(SettingsError(format!("`{value}` is not `claim=value`"))),
    }
}

/// `--oidc-group-binding` values.
pub fn parse_group_binding(value: &str) -> Result<GroupBinding, SettingsError> {
    let Some((group, role)) = value.rsplit_once('=') else {
        return Err(SettingsError(format!("`{value}` is not `group=operator` or `group=auditor`")));
    };
    let Some(role) = PlatformRole::parse(role.trim()) else {
        return Err(SettingsError(format!("`{value}`: the role `{role}` is neither `operator` nor `auditor`")));
    };
    if group.trim().is_empty() {
        return Err(SettingsError(format!("`{value}` names no group")));
    }
    Ok(GroupBinding { group: group.trim().to_owned(), role })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer_url: "https://idp.example.com".into(),
            audience: "gatehouse".into(),
            username_claim: "sub".into(),
            groups_claim: "groups".into(),
            required_claims: vec![],
            signing_algs: vec![SigningAlg(Algorithm::RS256)],
            group_bindings: vec![
                parse_group_binding("ops=operator").expect("binding"),
                parse_group_binding("audit=auditor").expect("binding"),
            ],
            clock_leeway: Duration::from_secs(30),
            jwks_min_interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn only_asymmetric_algorithms_are_accepted() {
        for name in SigningAlg::ACCEPTED {
            assert_eq!(parse_signing_alg(name).expect(name).name(), *name);
        }
        for refused in ["none", "None", "HS256", "hs512", "RS1", "ES512", ""] {
            let error = parse_signing_alg(refused).expect_err(refused).to_string();
            assert!(error.contains("accepted: RS256"), "{error}");
        }
        assert!(parse_signing_alg("none").expect_err("none").to_string().contains("unsigned"));
        assert!(parse_signing_alg("HS256").expect_err("HS256").to_string().contains("symmetric"));
    }

    #[test]
    fn bindings_and_required_claims_parse() {
        assert_eq!(
            parse_group_binding("team=ops=operator").expect("binding"),
            GroupBinding { group: "team=ops".into(), role: PlatformRole::Operator }
        );
        assert!(parse_group_binding("ops=admin").expect_err("role").to_string().contains("neither"));
        assert!(parse_group_binding("ops").is_err());
        assert!(parse_group_binding("=auditor").is_err());
        assert_eq!(
            parse_required_claim("hd=example.com").expect("claim"),
            RequiredClaim { claim: "hd".into(), value: "example.com".into() }
        );
        assert_eq!(parse_required_claim("tier=a=b").expect("claim").value, "a=b");
        assert!(parse_required_claim("=x").is_err());
        assert!(parse_required_claim("x").is_err());
    }

    #[test]
    fn operator_wins_over_auditor_and_unbound_groups_give_nothing() {
        let s = settings();
        assert_eq!(s.role_of(["audit", "ops"]), Some(PlatformRole::Operator));
        assert_eq!(s.role_of(["audit"]), Some(PlatformRole::Auditor));
        assert_eq!(s.role_of(["devs", "Ops"]), None, "group names are compared exactly");
        assert_eq!(s.role_of(std::iter::empty::<&str>()), None);
    }

    #[test]
    fn a_jwks_window_under_a_second_is_refused() {
        let mut s = settings();
        s.jwks_min_interval = Duration::from_millis(999);
        let refused = s.check().expect_err("no limit on key fetches");
        assert!(refused.0.starts_with("--oidc-jwks-min-interval must be at least 1s"), "{}", refused.0);
        s.jwks_min_interval = Duration::from_secs(1);
        s.check().expect("one second");
    }

    #[test]
    fn issuer_must_be_https_except_on_loopback() {
        let mut s = settings();
        s.check().expect("https issuer");
        for ok in ["http://127.0.0.1:8080", "http://localhost:9000/realms/x", "http://[::1]:1"] {
            s.issuer_url = ok.into();
            s.check().expect(ok);
        }
        for bad in ["http://idp.example.com", "ftp://127.0.0.1", "idp.example.com", "https://idp.example.com/?x=1"] {
            s.issuer_url = bad.into();
            assert!(s.check().expect_err(bad).to_string().contains("--oidc-issuer-url"), "{bad}");
        }
    }

    #[test]
    fn settings_that_would_refuse_everyone_are_an_error() {
        let mut s = settings();
        s.group_bindings.clear();
        assert!(s.check().expect_err("no bindings").to_string().contains("--oidc-group-binding"));
        let mut s = settings();
        s.audience = " ".into();
        assert!(s.check().expect_err("no audience").to_string().contains("--oidc-audience"));
    }
}
