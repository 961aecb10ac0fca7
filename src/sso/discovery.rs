//! *Verify* of a tenant's identity provider (issue 14.2): fetch its discovery document and keys the
//! way a sign-in will, and say in words what would stop one.

use serde_json::{Value, json};

use crate::operators::SigningAlg;
use crate::operators::keys::KeySet;
use crate::outbound::{Client, Policy};

/// What verification found: the endpoints a sign-in uses, or the problems.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub problems: Vec<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "passed": self.passed(),
            "problems": self.problems,
            "authorizationEndpoint": self.authorization_endpoint,
            "tokenEndpoint": self.token_endpoint,
            "jwksUri": self.jwks_uri,
        })
    }
}

/// Whether `url` may be fetched: https, or http on a loopback host when `allow_loopback_http` (a
/// local set-up or a test); and a host whose every address is public, so that a tenant's owner
/// cannot aim Gatehouse at its own network (loopback only with `allow_loopback_http`). Resolves
/// the host. Says why not.
pub async fn check_url(what: &str, url: &str, allow_loopback_http: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{what} `{url}` is not a URL ({e})"))?;
    let loopback = crate::model::is_loopback(&parsed);
    match parsed.scheme() {
        "https" => {}
        "http" if loopback && allow_loopback_http => {}
        "http" => return Err(format!("{what} `{url}` uses http: it must use https")),
        other => return Err(format!("{what} `{url}` has scheme `{other}`: it must use https")),
    }
    let host = parsed.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<std::net::IpAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{what} `{url}`: cannot resolve `{host}`: {e}"))?
        .map(|address| address.ip())
        .collect();
    match addresses.iter().find(|ip| !Policy::tenant(allow_loopback_http).allows(**ip)) {
        Some(ip) => Err(format!("{what} `{url}` resolves to {ip}, a private or local address Gatehouse does not call")),
        None => Ok(()),
    }
}

/// Fetches discovery and the JWKS of `issuer`; every problem in words.
pub async fn verify(issuer: &str, allow_loopback_http: bool) -> Report {
    let mut report =
        Report { problems: Vec::new(), authorization_endpoint: None, token_endpoint: None, jwks_uri: None };
    if let Err(problem) = check_url("the issuer", issuer, allow_loopback_http).await {
        report.problems.push(problem);
        return report;
    }
    let client = Client::new(Policy::tenant(allow_loopback_http));
    let discovery_url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let discovery = match client.get_json(&discovery_url).await {
        Ok(document) => document,
        Err(error) => {
            report.problems.push(format!("cannot read the discovery document: {error}"));
            return report;
        }
    };
    match discovery.get("issuer").and_then(Value::as_str) {
        Some(named) if named == issuer => {}
        Some(named) => report.problems.push(format!(
            "the discovery document names the issuer `{named}`, not `{issuer}`: they must be exactly equal"
        )),
        None => report.problems.push(format!("{discovery_url} has no `issuer`")),
    }
    for name in ["authorization_endpoint", "token_endpoint", "jwks_uri"] {
        let url = match discovery.get(name).and_then(Value::as_str) {
            Some(url) => match check_url(&format!("the `{name}`"), url, allow_loopback_http).await {
                Ok(()) => Some(url.to_owned()),
                Err(problem) => {
                    report.problems.push(problem);
                    None
                }
            },
            None => {
                report.problems.push(format!("the discovery document has no `{name}`"));
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
        report
            .problems
            .push(format!("the provider does not support the code flow (response types: {})", types.join(", ")));
    }
    match listed("id_token_signing_alg_values_supported") {
        Some(algs) if algs.iter().any(|a| SigningAlg::accepted(a).is_some()) => {}
        Some(algs) => report.problems.push(format!(
            "the provider signs ID tokens only with [{}]; Gatehouse checks RS256, PS256, ES256 or EdDSA (and their larger sizes)",
            algs.join(", ")
        )),
        None => report.problems.push("the discovery document has no `id_token_signing_alg_values_supported`".into()),
    }
    if let Some(jwks_uri) = &report.jwks_uri {
        match client.get_json(jwks_uri).await.and_then(|document| KeySet::parse(&document)) {
            Ok(keys) if keys.len() > 0 => {}
            Ok(_) => report.problems.push(format!("the JWKS at {jwks_uri} has no signing key Gatehouse can use")),
            Err(error) => report.problems.push(format!("cannot fetch the JWKS: {error}")),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_issuer_on_a_private_or_local_address_is_refused_in_words() {
        let refused = check_url("the issuer", "https://127.0.0.1:8443", false).await.expect_err("loopback");
        assert!(refused.contains("private or local address"), "{refused}");
        assert!(check_url("the issuer", "https://10.0.0.1", true).await.is_err());
    }

    #[tokio::test]
    async fn urls_must_be_https_and_http_is_allowed_only_on_loopback_when_asked() {
        let http = check_url("the issuer", "http://login.acme.example", true).await.expect_err("http");
        assert!(http.contains("must use https"), "{http}");
        assert!(check_url("the issuer", "http://127.0.0.1:9000", false).await.is_err());
        assert!(check_url("the issuer", "http://127.0.0.1:9000", true).await.is_ok());
        assert!(check_url("the issuer", "ftp://x", true).await.is_err());
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_reported_in_words() {
        // Port 1 on loopback: nothing listens there.
        let report = verify("http://127.0.0.1:1", true).await;
        assert!(!report.passed());
        assert!(
            report.problems[0].starts_with("cannot read the discovery document: GET http://127.0.0.1:1/"),
            "{report:?}"
        );
    }
}
