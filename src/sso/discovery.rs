//! *Verify* of a tenant's identity provider (issue 14.2): fetch its discovery document and keys the
//! way a sign-in will, and say in words what would stop one.

use serde_json::{Value, json};

use crate::i18n::{Lang, Text, Tr};
use crate::operators::SigningAlg;
use crate::operators::keys::KeySet;
use crate::outbound::{Client, Policy};

/// What verification found: the endpoints a sign-in uses, or the problems.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Each problem, to be said in its reader's language (`Report::said`).
    pub problems: Vec<Text>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems in `lang`: English for the API and the audit log, the page's for a console.
    pub fn said(&self, lang: Lang) -> Vec<String> {
        self.problems.iter().map(|problem| problem.said(Tr::new(lang))).collect()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "passed": self.passed(),
            "problems": self.said(Lang::En),
            "authorizationEndpoint": self.authorization_endpoint,
            "tokenEndpoint": self.token_endpoint,
            "jwksUri": self.jwks_uri,
        })
    }
}

/// Whether `url` (the value of the provider's `field`) may be fetched: https, or http on a
/// loopback host when `allow_loopback_http` (a local set-up or a test); and a host whose every
/// address is public, so that a tenant's owner cannot aim Gatehouse at its own network (loopback
/// only with `allow_loopback_http`). Resolves the host. Says why not.
pub async fn check_url(field: &str, url: &str, allow_loopback_http: bool) -> Result<(), Text> {
    let said = |key: &'static str, mut more: Vec<(&'static str, String)>| {
        more.extend([("field", field.to_owned()), ("url", url.to_owned())]);
        Text::new(key, more)
    };
    let parsed = url::Url::parse(url).map_err(|e| said("sso-problem-not-url", vec![("error", e.to_string())]))?;
    let loopback = crate::model::is_loopback(&parsed);
    match parsed.scheme() {
        "https" => {}
        "http" if loopback && allow_loopback_http => {}
        "http" => return Err(said("sso-problem-http", vec![])),
        other => return Err(said("sso-problem-scheme", vec![("scheme", other.to_owned())])),
    }
    let host = parsed.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<std::net::IpAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| said("sso-problem-resolve", vec![("host", host.to_owned()), ("error", e.to_string())]))?
        .map(|address| address.ip())
        .collect();
    match addresses.iter().find(|ip| !Policy::tenant(allow_loopback_http).allows(**ip)) {
        Some(ip) => Err(said("sso-problem-private", vec![("ip", ip.to_string())])),
        None => Ok(()),
    }
}

/// Fetches discovery and the JWKS of `issuer`; every problem in words.
pub async fn verify(issuer: &str, allow_loopback_http: bool) -> Report {
    let mut report =
        Report { problems: Vec::new(), authorization_endpoint: None, token_endpoint: None, jwks_uri: None };
    if let Err(problem) = check_url("issuer", issuer, allow_loopback_http).await {
        report.problems.push(problem);
        return report;
    }
    let client = Client::new(Policy::tenant(allow_loopback_http));
    let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let discovery = match client.get_json(&discovery_url).await {
        Ok(document) => document,
        Err(error) => {
            report.problems.push(Text::new("sso-problem-discovery", vec![("error", error.to_string())]));
            return report;
        }
    };
    match discovery.get("issuer").and_then(Value::as_str) {
        Some(named) if named == issuer => {}
        Some(named) => report.problems.push(Text::new(
            "sso-problem-issuer-differs",
            vec![("named", named.to_owned()), ("issuer", issuer.to_owned())],
        )),
        None => report.problems.push(Text::new("sso-problem-no-issuer", vec![("url", discovery_url.clone())])),
    }
    for name in ["authorization_endpoint", "token_endpoint", "jwks_uri"] {
        let url = match discovery.get(name).and_then(Value::as_str) {
            // Named as the API always named it: the `jwks_uri` `https://…`.
            Some(url) => match check_url(&format!("`{name}`"), url, allow_loopback_http).await {
                Ok(()) => Some(url.to_owned()),
                Err(problem) => {
                    report.problems.push(problem);
                    None
                }
            },
            None => {
                report.problems.push(Text::new("sso-problem-missing", vec![("name", name.to_owned())]));
                None
            }
        };
        match name {
            "authorization_endpoint" => report.authorization_endpoint = url,
            "token_endpoint" => report.token_endpoint = url,
            _ => report.jwks_uri = url,
        }
    }
    let listed = |name: &str| -> Option<Vec<String>> {
        discovery.get(name)?.as_array().map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
    };
    if let Some(types) = listed("response_types_supported")
        && !types.iter().any(|t| t == "code")
    {
        report.problems.push(Text::new("sso-problem-no-code-flow", vec![("types", types.join(", "))]));
    }
    match listed("id_token_signing_alg_values_supported") {
        Some(algs) if algs.iter().any(|a| SigningAlg::accepted(a).is_some()) => {}
        Some(algs) => report.problems.push(Text::new("sso-problem-algs", vec![("algs", algs.join(", "))])),
        None => report
            .problems
            .push(Text::new("sso-problem-missing", vec![("name", "id_token_signing_alg_values_supported".to_owned())])),
    }
    if let Some(jwks_uri) = &report.jwks_uri {
        match client.get_json(jwks_uri).await.and_then(|document| KeySet::parse(&document)) {
            Ok(keys) if keys.len() > 0 => {}
            Ok(_) => report.problems.push(Text::new("sso-problem-no-key", vec![("url", jwks_uri.clone())])),
            Err(error) => report.problems.push(Text::new("sso-problem-jwks", vec![("error", error.to_string())])),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_issuer_on_a_private_or_local_address_is_refused_in_words() {
        let english = Tr::new(Lang::En);
        let refused = check_url("issuer", "https://127.0.0.1:8443", false).await.expect_err("loopback").said(english);
        assert!(refused.contains("private or local address"), "{refused}");
        assert!(check_url("issuer", "https://10.0.0.1", true).await.is_err());
    }

    #[tokio::test]
    async fn urls_must_be_https_and_http_is_allowed_only_on_loopback_when_asked() {
        let http = check_url("issuer", "http://login.acme.example", true).await.expect_err("http");
        assert_eq!(http.said(Tr::new(Lang::En)), "the issuer `http://login.acme.example` uses http: it must use https");
        assert_eq!(
            http.said(Tr::new(Lang::De)),
            "issuer `http://login.acme.example` verwendet http: erforderlich ist https"
        );
        let endpoint = check_url("`jwks_uri`", "http://keys.acme.example", true).await.expect_err("http");
        assert_eq!(
            endpoint.said(Tr::new(Lang::En)),
            "the `jwks_uri` `http://keys.acme.example` uses http: it must use https",
            "the API's wording as before"
        );
        assert!(check_url("issuer", "http://127.0.0.1:9000", false).await.is_err());
        assert!(check_url("issuer", "http://127.0.0.1:9000", true).await.is_ok());
        assert!(check_url("issuer", "ftp://x", true).await.is_err());
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_reported_in_words() {
        // Port 1 on loopback: nothing listens there.
        let report = verify("http://127.0.0.1:1", true).await;
        assert!(!report.passed());
        assert!(
            report.said(Lang::En)[0].starts_with("cannot read the discovery document: GET http://127.0.0.1:1/"),
            "{report:?}"
        );
    }
}
