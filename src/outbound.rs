//! Every request Gatehouse makes to another server (issue 25.3, ADR 0014): identity providers'
//! discovery and keys, tenant SSO's token exchange, the operators' provider, budget webhooks. One
//! async client (reqwest, ADR 0015): no redirects, short timeouts, answers of bounded size, and a
//! resolver that refuses private, loopback, link-local, shared and unspecified addresses unless the
//! destination's policy allows them. The connection goes to the addresses the resolver checked,
//! never to a second lookup, so a host cannot resolve to a public address for the check and a
//! private one for the connection (DNS rebinding); an address written in the URL itself is checked
//! before the request, since no resolver sees it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Discovery documents and key sets are a few kilobytes; a larger answer is refused.
const MAX_DOCUMENT: u64 = 512 * 1024;

/// Which addresses a destination may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub allow_loopback: bool,
    pub allow_private: bool,
}

impl Policy {
    /// A destination a tenant chose (its identity provider): public addresses only; loopback only
    /// with `--sso-allow-loopback-http` (local set-ups and tests).
    pub fn tenant(allow_loopback: bool) -> Policy {
        Policy { allow_loopback, allow_private: false }
    }

    /// A destination the operator configured (their identity provider, the budget webhook): the
    /// operator's setting is the explicit allowance of a private or local address.
    pub fn operator() -> Policy {
        Policy { allow_loopback: true, allow_private: true }
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows(self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                if v4.is_loopback() {
                    return self.allow_loopback;
                }
                // "This network" (0/8), multicast and reserved (240/4, broadcast included): never.
                if a == 0 || v4.is_multicast() || a >= 240 {
                    return false;
                }
                let [.., c, _] = v4.octets();
                let private = v4.is_private()
                    || v4.is_link_local()
                    || v4.is_documentation()
                    || (a == 100 && (64..128).contains(&b))
                    || (a == 198 && (18..20).contains(&b))
                    // IETF protocol assignments (192.0.0.0/24).
                    || (a == 192 && b == 0 && c == 0);
                !private || self.allow_private
            }
            IpAddr::V6(v6) => {
                // An IPv4 address inside an IPv6 one is judged as that IPv4 address: mapped
                // (::ffff:a.b.c.d), compatible (::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d).
                let segments = v6.segments();
                let embedded = match segments {
                    [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] | [0x64, 0xff9b, 0, 0, 0, 0, ..]
                        if !v6.is_loopback() && !v6.is_unspecified() =>
                    {
                        let [.., c, d] = segments;
                        Some(std::net::Ipv4Addr::new((c >> 8) as u8, c as u8, (d >> 8) as u8, d as u8))
                    }
                    _ => None,
                };
                if let Some(v4) = embedded {
                    return self.allows(IpAddr::V4(v4));
                }
                // 6to4 (2002:a.b.c.d::/48) carries an IPv4 address too.
                if segments[0] == 0x2002 {
                    let [_, high, low, ..] = segments;
                    let v4 = std::net::Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8);
                    return self.allows(IpAddr::V4(v4));
                }
                if v6.is_loopback() {
                    return self.allow_loopback;
                }
                if v6.is_unspecified() || v6.is_multicast() {
                    return false;
                }
                let first = v6.segments()[0];
                // Unique local (fc00::/7), link-local (fe80::/10) and the deprecated site-local
                // (fec0::/10).
                let private = (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80 || (first & 0xffc0) == 0xfec0;
                !private || self.allow_private
            }
        }
    }

    /// Of the addresses a name resolved to, those a connection may use; an error naming the host
    /// when none is allowed.
    fn allowed(self, host: &str, all: Vec<SocketAddr>) -> std::io::Result<Vec<SocketAddr>> {
        let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| self.allows(a.ip())).collect();
        if allowed.is_empty() && !all.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{host} resolves only to private or local addresses, which Gatehouse does not call"),
            ));
        }
        Ok(allowed)
    }
}

/// The resolver of a client: the system's lookup, then only the addresses `Policy` allows.
struct Checked(Policy);

impl reqwest::dns::Resolve for Checked {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.allowed(&host, all)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// TLS as every client here speaks it: rustls with ring (lettre's too), webpki's root certificates.
pub fn tls() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"))
}

/// The client for destinations of one policy. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    policy: Policy,
}

impl Client {
    pub fn new(policy: Policy) -> Client {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .dns_resolver(Checked(policy))
            .no_proxy()
            .tls_backend_preconfigured(tls())
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|error| unreachable!("a client of fixed settings builds: {error}"));
        Client { http, policy }
    }

    /// A request to `url`, refused before it is sent when the URL names an address the policy
    /// does not allow (the resolver sees names only).
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url} is not a URL: {e}"))?;
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal.filter(|ip| !self.policy.allows(*ip)) {
            return Err(format!("{url}: {ip} is a private or local address, which Gatehouse does not call"));
        }
        Ok(self.http.request(method, parsed))
    }

    /// `GET url` as JSON: a 200 of at most `MAX_DOCUMENT` bytes, or the problem in words (for logs
    /// and for the person who configured the destination, never for a browser).
    pub async fn get_json(&self, url: &str) -> Result<Value, String> {
        let request = self.request(reqwest::Method::GET, url)?.header("Accept", "application/json");
        let response = request.send().await.map_err(|e| format!("GET {url}: {}", transport(&e)))?;
        if response.status() != 200 {
            // Redirects are not followed: the document comes from where it was named, or not at all.
            return Err(format!("GET {url} answered {} (redirects are not followed)", response.status().as_u16()));
        }
        let body = bounded_body(response, MAX_DOCUMENT).await.map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {url} did not answer JSON: {e}"))
    }
}

/// An answer's body, refused when it is larger than `limit` bytes (read as it arrives, so a huge
/// one is cut early).
pub async fn bounded_body(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("cannot read the answer: {}", transport(&e)))? {
        body.extend_from_slice(&chunk);
        if body.len() as u64 > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
    }
    Ok(body)
}

/// A transport error in words, with its causes (the resolver's refusal, say).
pub fn transport(error: &reqwest::Error) -> String {
    let mut words = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        words.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_tenants_destination_has_public_addresses_only_and_loopback_when_allowed() {
        let tenant = Policy::tenant(true);
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "0.1.2.3",
            "198.18.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.170",
            "fec0::1",
            "2002:a00:1::1",
        ] {
            assert!(!tenant.allows(ip(private)), "{private}");
        }
        assert!(tenant.allows(ip("127.0.0.1")));
        assert!(!Policy::tenant(false).allows(ip("127.0.0.1")));
        assert!(!Policy::tenant(false).allows(ip("::1")));
        assert!(tenant.allows(ip("93.184.216.34")));
        assert!(tenant.allows(ip("2606:2800:220:1::1")), "a public IPv6 address");
        assert!(tenant.allows(ip("::ffff:93.184.216.34")));
        assert!(tenant.allows(ip("2002:5db8:d822::1")), "6to4 of a public IPv4 address");
        let operator = Policy::operator();
        assert!(operator.allows(ip("10.1.2.3")) && operator.allows(ip("127.0.0.1")));
        assert!(!operator.allows(ip("0.0.0.0")), "nobody connects to the unspecified address");
    }

    /// A loopback server answering every connection with `answer`; counts the connections.
    async fn answering(answer: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let port = listener.local_addr().expect("address").port();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (format!("127.0.0.1:{port}"), connections)
    }

    const JSON: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"keys\": 1}";

    #[tokio::test]
    async fn a_name_or_an_address_the_policy_refuses_is_never_connected_to() {
        // Issue 25.3: the probe's jwks_uri pointed at https://0.0.0.0:18261.
        let (at, connections) = answering(JSON).await;
        let port = at.rsplit(':').next().expect("port");
        let tenant = Client::new(Policy::tenant(false));
        for url in [
            format!("http://{at}/jwks"),
            format!("http://localhost:{port}/jwks"),
            format!("http://[::ffff:127.0.0.1]:{port}/jwks"),
        ] {
            let error = tenant.get_json(&url).await.expect_err("refused");
            assert!(error.contains("private or local"), "{url}: {error}");
        }
        let error = Client::new(Policy::tenant(true)).get_json("http://0.0.0.0:18261/jwks").await.expect_err("refused");
        assert!(error.contains("private or local"), "{error}");
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "no connection reached the server");
    }

    #[tokio::test]
    async fn an_allowed_destination_answers_json_and_a_redirect_is_not_followed() {
        let (at, _) = answering(JSON).await;
        let fetched = Client::new(Policy::tenant(true)).get_json(&format!("http://{at}/jwks")).await.expect("fetched");
        assert_eq!(fetched, serde_json::json!({ "keys": 1 }));
        let (elsewhere, _) =
            answering("HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n").await;
        let error = Client::new(Policy::operator()).get_json(&format!("http://{elsewhere}/")).await.expect_err("302");
        assert!(error.contains("answered 302 (redirects are not followed)"), "{error}");
    }
}
