//! The values an OpenID client registration carries: the algorithm its ID tokens are signed with and
//! the redirect URIs it may use.

/// The algorithms ID tokens are signed with: RS256 (every client supports it) and EdDSA.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub enum Alg {
    #[default]
    RS256,
    EdDSA,
}

impl Alg {
    pub const ALL: [Alg; 2] = [Alg::RS256, Alg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(text: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|alg| alg.as_str() == text)
    }
}

/// A redirect URI a client may register: absolute, https (or http on a loopback host, for local
/// and native applications, RFC 8252 §7.3), no fragment, no credentials.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let parsed = url::Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URL ({e})"))?;
    let loopback = is_loopback(&parsed);
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(format!("`{uri}` must use https (http only on a loopback host)")),
        other => return Err(format!("`{uri}` has scheme `{other}`; use https")),
    }
    if parsed.fragment().is_some() {
        return Err(format!("`{uri}` has a fragment; redirect URIs must not (RFC 6749 §3.1.2)"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("`{uri}` carries credentials"));
    }
    Ok(())
}

/// Whether `url` names a loopback host: 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_https_or_loopback_http_without_fragment() {
        assert!(check_redirect_uri("https://app.example/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:5173/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").expect_err("refused").contains("https"));
        assert!(check_redirect_uri("https://app.example/cb#x").expect_err("refused").contains("fragment"));
        assert!(check_redirect_uri("https://u:p@app.example/cb").expect_err("refused").contains("credentials"));
        assert!(check_redirect_uri("/relative").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }
}
