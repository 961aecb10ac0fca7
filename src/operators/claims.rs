//! From the claims of a token whose signature holds to a platform operator or auditor, or a refusal
//! that says which claim is wrong and how. Pure: the clock is a parameter.

use serde_json::{Map, Value};

use super::settings::OidcSettings;
use super::{Operator, Refusal};

type Claims = Map<String, Value>;

/// The issuer is checked before any key is looked up, so a token from another provider never
/// makes Gatehouse fetch keys.
pub(crate) fn check_issuer(claims: &Claims, issuer: &str) -> Result<(), Refusal> {
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == issuer => Ok(()),
        Some(Value::String(iss)) => Err(Refusal::invalid(format!("the token's issuer `{iss}` is not `{issuer}`"))),
        Some(_) => Err(Refusal::invalid("the token's `iss` claim is not a string")),
        None => Err(Refusal::invalid("the token has no `iss` claim")),
    }
}

/// Every check after the signature, in the order a person would fix them: whose token, when, which
/// claims, who, which role. `now` is in seconds since the epoch.
pub(crate) fn map(claims: &Claims, settings: &OidcSettings, now: i64) -> Result<Operator, Refusal> {
    check_issuer(claims, &settings.issuer_url)?;
    check_audience(claims, &settings.audience)?;
    check_times(claims, now, i64::try_from(settings.clock_leeway.as_secs()).unwrap_or(i64::MAX))?;
    for required in &settings.required_claims {
        match claims.get(&required.claim) {
            Some(Value::String(value)) if *value == required.value => {}
            Some(other) => {
                return Err(Refusal::invalid(format!(
                    "the token's `{}` claim is {}, not the required `{}`",
                    required.claim,
                    shown(other),
                    required.value
                )));
            }
            None => {
                return Err(Refusal::invalid(format!(
                    "the token has no `{}` claim, which must be `{}`",
                    required.claim, required.value
                )));
            }
        }
    }
    let subject = non_empty_string(claims, "sub")?;
    let username = username(claims, &settings.username_claim)?;
    let groups = groups(claims, &settings.groups_claim)?;
    let Some(role) = settings.role_of(groups.iter().map(String::as_str)) else {
        return Err(if groups.is_empty() {
            Refusal::unbound(format!(
                "the token has no groups in its `{}` claim, so no platform role",
                settings.groups_claim
            ))
        } else {
            Refusal::unbound(format!("none of the groups [{}] is bound to a platform role", groups.join(", ")))
        });
    };
    let name = claims.get("name").and_then(Value::as_str).map(str::to_owned);
    Ok(Operator { issuer: settings.issuer_url.clone(), subject, username, name, groups, role })
}

/// `aud` is a string or an array of strings (OIDC Core §2); ours must be among them.
pub(crate) fn check_audience(claims: &Claims, audience: &str) -> Result<(), Refusal> {
    let listed: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(Refusal::invalid("the token's `aud` claim is neither a string nor an array")),
        None => return Err(Refusal::invalid("the token has no `aud` claim")),
    };
    if listed.contains(&audience) {
        return Ok(());
    }
    Err(Refusal::invalid(format!("the token's audience [{}] does not include `{audience}`", listed.join(", "))))
}

/// `exp` is required; `nbf` and `iat`, when present, must not lie in the future. Each within `leeway`.
pub(crate) fn check_times(claims: &Claims, now: i64, leeway: i64) -> Result<(), Refusal> {
    let Some(exp) = seconds(claims, "exp")? else {
        return Err(Refusal::invalid("the token has no `exp` claim: tokens without an expiry are refused"));
    };
    if now > exp.saturating_add(leeway) {
        return Err(Refusal::invalid(format!("the token expired at {}", when(exp))));
    }
    if let Some(nbf) = seconds(claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(Refusal::invalid(format!("the token is not valid before {}", when(nbf))));
    }
    if let Some(iat) = seconds(claims, "iat")?
        && iat > now.saturating_add(leeway)
    {
        return Err(Refusal::invalid(format!(
            "the token was issued in the future ({}): check the clocks of Gatehouse and the identity provider",
            when(iat)
        )));
    }
    Ok(())
}

fn seconds(claims: &Claims, claim: &str) -> Result<Option<i64>, Refusal> {
    match claims.get(claim) {
        None => Ok(None),
        // NumericDate may carry a fraction (RFC 7519 §2); whole seconds are enough here.
        Some(Value::Number(n)) => match n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)) {
            Some(value) => Ok(Some(value)),
            None => Err(Refusal::invalid(format!("the token's `{claim}` claim is not a time"))),
        },
        Some(_) => Err(Refusal::invalid(format!("the token's `{claim}` claim is not a number"))),
    }
}

/// The username claim; `email` counts only when the provider says it verified it, as Kubernetes does.
fn username(claims: &Claims, claim: &str) -> Result<String, Refusal> {
    let username = non_empty_string(claims, claim)?;
    if claim == "email" && claims.get("email_verified") != Some(&Value::Bool(true)) {
        return Err(Refusal::invalid(format!(
            "the token's email `{username}` is not verified (`email_verified` is not true), so it cannot name an operator"
        )));
    }
    Ok(username)
}

/// The groups claim: an array of strings or one string; absent means no groups.
fn groups(claims: &Claims, claim: &str) -> Result<Vec<String>, Refusal> {
    let not_groups =
        || Refusal::invalid(format!("the token's `{claim}` claim is neither a string nor an array of strings"));
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(group)) => Ok(vec![group.clone()]),
        Some(Value::Array(items)) => {
            items.iter().map(|item| item.as_str().map(str::to_owned).ok_or_else(not_groups)).collect()
        }
        Some(_) => Err(not_groups()),
    }
}

fn non_empty_string(claims: &Claims, claim: &str) -> Result<String, Refusal> {
    match claims.get(claim) {
        Some(Value::String(value)) if !value.trim().is_empty() => Ok(value.clone()),
        Some(Value::String(_)) => Err(Refusal::invalid(format!("the token's `{claim}` claim is empty"))),
        Some(_) => Err(Refusal::invalid(format!("the token's `{claim}` claim is not a string"))),
        None => Err(Refusal::invalid(format!("the token has no `{claim}` claim"))),
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => format!("`{other}`"),
    }
}

fn when(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map_or_else(|| seconds.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::model::PlatformRole;
    use crate::operators::RefusalKind;
    use crate::operators::settings::{SigningAlg, parse_group_binding, parse_required_claim};

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://idp.example.com";

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer_url: ISSUER.into(),
            audience: "gatehouse".into(),
            username_claim: "sub".into(),
            groups_claim: "groups".into(),
            required_claims: vec![],
            signing_algs: vec![SigningAlg::accepted("RS256").expect("RS256")],
            group_bindings: vec![
                parse_group_binding("platform-ops=operator").expect("binding"),
                parse_group_binding("auditors=auditor").expect("binding"),
            ],
            clock_leeway: Duration::from_secs(30),
            jwks_min_interval: Duration::from_secs(10),
        }
    }

    fn claims(extra: Value) -> Claims {
        let mut base = json!({
            "iss": ISSUER, "aud": "gatehouse", "sub": "u-1", "exp": NOW + 600, "iat": NOW - 5,
            "groups": ["platform-ops"], "name": "Ada Lovelace",
        });
        for (key, value) in extra.as_object().expect("object") {
            if value.is_null() {
                base.as_object_mut().expect("object").remove(key);
            } else {
                base[key] = value.clone();
            }
        }
        base.as_object().expect("object").clone()
    }

    fn refused(settings: &OidcSettings, extra: Value) -> String {
        map(&claims(extra), settings, NOW).expect_err("refused").to_string()
    }

    #[test]
    fn an_operator_group_maps_to_an_operator() {
        let operator = map(&claims(json!({})), &settings(), NOW).expect("operator");
        assert_eq!(
            operator,
            Operator {
                issuer: ISSUER.into(),
                subject: "u-1".into(),
                username: "u-1".into(),
                name: Some("Ada Lovelace".into()),
                groups: vec!["platform-ops".into()],
                role: PlatformRole::Operator,
            }
        );
    }

    #[test]
    fn groups_may_be_an_array_or_a_single_string() {
        let s = settings();
        let one = map(&claims(json!({"groups": "auditors"})), &s, NOW).expect("string");
        assert_eq!((one.groups, one.role), (vec!["auditors".to_owned()], PlatformRole::Auditor));
        let both = map(&claims(json!({"groups": ["auditors", "platform-ops"]})), &s, NOW).expect("array");
        assert_eq!(both.role, PlatformRole::Operator, "operator wins over auditor");
        assert!(refused(&s, json!({"groups": [1, "x"]})).contains("neither a string nor an array of strings"));
        assert!(refused(&s, json!({"groups": {"a": 1}})).contains("neither a string"));
    }

    #[test]
    fn the_groups_claim_is_configurable() {
        let mut s = settings();
        s.groups_claim = "roles".into();
        let operator = map(&claims(json!({"roles": "platform-ops", "groups": null})), &s, NOW).expect("roles");
        assert_eq!(operator.role, PlatformRole::Operator);
    }

    #[test]
    fn unbound_or_missing_groups_are_refused_naming_them() {
        let s = settings();
        let unbound = map(&claims(json!({"groups": ["devs", "sales"]})), &s, NOW).expect_err("unbound");
        assert_eq!(unbound.kind(), RefusalKind::Unbound);
        assert_eq!(unbound.to_string(), "none of the groups [devs, sales] is bound to a platform role");
        assert_eq!(
            refused(&s, json!({"groups": null})),
            "the token has no groups in its `groups` claim, so no platform role"
        );
    }

    #[test]
    fn issuer_and_audience_are_exact() {
        let s = settings();
        assert_eq!(
            refused(&s, json!({"iss": "https://idp.example.com/"})),
            "the token's issuer `https://idp.example.com/` is not `https://idp.example.com`"
        );
        assert_eq!(refused(&s, json!({"iss": null})), "the token has no `iss` claim");
        assert_eq!(refused(&s, json!({"aud": "other"})), "the token's audience [other] does not include `gatehouse`");
        assert_eq!(refused(&s, json!({"aud": ["a", "b"]})), "the token's audience [a, b] does not include `gatehouse`");
        assert!(map(&claims(json!({"aud": ["a", "gatehouse"]})), &s, NOW).is_ok());
        assert_eq!(refused(&s, json!({"aud": null})), "the token has no `aud` claim");
    }

    #[test]
    fn times_are_checked_within_the_leeway() {
        let s = settings();
        assert_eq!(refused(&s, json!({"exp": NOW - 31})), "the token expired at 2027-01-15T07:59:29Z");
        assert!(map(&claims(json!({"exp": NOW - 29})), &s, NOW).is_ok(), "within the leeway");
        assert!(refused(&s, json!({"exp": null})).contains("no `exp` claim"));
        assert!(refused(&s, json!({"exp": "tomorrow"})).contains("`exp` claim is not a number"));
        assert!(refused(&s, json!({"nbf": NOW + 60})).contains("not valid before"));
        assert!(map(&claims(json!({"nbf": NOW + 20})), &s, NOW).is_ok());
        assert!(refused(&s, json!({"iat": NOW + 3600})).contains("issued in the future"));
        assert!(map(&claims(json!({"exp": (NOW + 10) as f64 + 0.5})), &s, NOW).is_ok(), "fractional NumericDate");
    }

    #[test]
    fn required_claims_must_match_exactly() {
        let mut s = settings();
        s.required_claims = vec![parse_required_claim("hd=example.com").expect("claim")];
        assert!(map(&claims(json!({"hd": "example.com"})), &s, NOW).is_ok());
        assert_eq!(
            refused(&s, json!({"hd": "evil.com"})),
            "the token's `hd` claim is `evil.com`, not the required `example.com`"
        );
        assert_eq!(refused(&s, json!({})), "the token has no `hd` claim, which must be `example.com`");
        assert!(refused(&s, json!({"hd": ["example.com"]})).contains("not the required"));
    }

    #[test]
    fn an_email_username_must_be_verified() {
        let mut s = settings();
        s.username_claim = "email".into();
        let ok = map(&claims(json!({"email": "ada@example.com", "email_verified": true})), &s, NOW).expect("verified");
        assert_eq!((ok.username.as_str(), ok.subject.as_str()), ("ada@example.com", "u-1"));
        for unverified in
            [json!({"email": "ada@example.com"}), json!({"email": "ada@example.com", "email_verified": "true"})]
        {
            assert!(refused(&s, unverified).contains("is not verified"));
        }
        assert_eq!(refused(&s, json!({})), "the token has no `email` claim");
        s.username_claim = "preferred_username".into();
        assert_eq!(map(&claims(json!({"preferred_username": "ada"})), &s, NOW).expect("name").username, "ada");
        assert_eq!(refused(&s, json!({"preferred_username": ""})), "the token's `preferred_username` claim is empty");
    }

    #[test]
    fn a_subject_is_required() {
        assert_eq!(refused(&settings(), json!({"sub": null})), "the token has no `sub` claim");
        assert_eq!(refused(&settings(), json!({"sub": 7})), "the token's `sub` claim is not a string");
    }
}
