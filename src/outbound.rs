//! Every request Gatehouse makes to another server (issue 25.3, ADR 0014): identity providers'
//! discovery and keys, tenant SSO's token exchange, the operators' provider, budget webhooks. One
//! client: no redirects, short timeouts, answers of bounded size, and a resolver that refuses
//! private, loopback, link-local, shared and unspecified addresses unless the destination's
//! policy allows them. The connection goes to the addresses the resolver checked, never to a
//! second lookup, so a host cannot resolve to a public address for the check and a private one
//! for the connection (DNS rebinding). Blocking (ureq): run it off the async runtime.

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
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
                let private = v4.is_private()
                    || v4.is_link_local()
                    || v4.is_documentation()
                    || (a == 100 && (64..128).contains(&b))
                    || (a == 198 && (18..20).contains(&b));
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
                if v6.is_loopback() {
                    return self.allow_loopback;
                }
                if v6.is_unspecified() || v6.is_multicast() {
                    return false;
                }
                let first = v6.segments()[0];
                let private = (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80;
                !private || self.allow_private
            }
        }
    }

    /// The addresses of `netloc` (`host:port`) a connection may use; an error naming the host
    /// when it has none.
    pub fn resolve(self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        let all: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| self.allows(a.ip())).collect();
        if allowed.is_empty() && !all.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{netloc} resolves only to private or local addresses, which Gatehouse does not call"),
            ));
        }
        Ok(allowed)
    }
}

/// The client for destinations of `policy`.
pub fn agent(policy: Policy) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .resolver(move |netloc: &str| policy.resolve(netloc))
        .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// `GET url` as JSON: a 200 of at most `MAX_DOCUMENT` bytes, or the problem in words (for logs
/// and for the person who configured the destination, never for a browser).
pub fn get_json(agent: &ureq::Agent, url: &str) -> Result<Value, String> {
    let response = match agent.get(url).set("Accept", "application/json").call() {
        Ok(response) => response,
        Err(ureq::Error::Status(code, _)) => return Err(format!("GET {url} answered {code}")),
        Err(ureq::Error::Transport(error)) => return Err(format!("GET {url}: {}", transport(&error))),
    };
    if response.status() != 200 {
        // Redirects are not followed: the document comes from where it was named, or not at all.
        return Err(format!("GET {url} answered {} (redirects are not followed)", response.status()));
    }
    let mut body = Vec::new();
    response
        .into_reader()
        .take(MAX_DOCUMENT + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("GET {url}: cannot read the answer: {e}"))?;
    if body.len() as u64 > MAX_DOCUMENT {
        return Err(format!("GET {url}: the answer is larger than {MAX_DOCUMENT} bytes"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("GET {url} did not answer JSON: {e}"))
}

/// A transport error in words, with its cause (the resolver's refusal, say).
pub fn transport(error: &ureq::Transport) -> String {
    let detail = error.message().map(|m| format!(": {m}")).unwrap_or_default();
    let cause = std::error::Error::source(error).map(|c| format!(" ({c})")).unwrap_or_default();
    format!("{}{detail}{cause}", error.kind())
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
        ] {
            assert!(!tenant.allows(ip(private)), "{private}");
        }
        assert!(tenant.allows(ip("127.0.0.1")));
        assert!(!Policy::tenant(false).allows(ip("127.0.0.1")));
        assert!(!Policy::tenant(false).allows(ip("::1")));
        assert!(tenant.allows(ip("93.184.216.34")));
        assert!(tenant.allows(ip("2606:2800:220:1::1")), "a public IPv6 address");
        assert!(tenant.allows(ip("::ffff:93.184.216.34")));
        let operator = Policy::operator();
        assert!(operator.allows(ip("10.1.2.3")) && operator.allows(ip("127.0.0.1")));
        assert!(!operator.allows(ip("0.0.0.0")), "nobody connects to the unspecified address");
    }

    #[test]
    fn the_resolver_refuses_a_host_with_only_refused_addresses() {
        // Issue 25.3: the probe's jwks_uri pointed at https://0.0.0.0:18261.
        let refused = Policy::tenant(true).resolve("0.0.0.0:18261").expect_err("refused");
        assert!(refused.to_string().contains("private or local"), "{refused}");
        assert!(Policy::tenant(false).resolve("127.0.0.1:443").is_err());
        assert_eq!(Policy::tenant(true).resolve("127.0.0.1:443").expect("allowed").len(), 1);
    }

    #[test]
    fn a_fetch_of_a_refused_address_never_connects() {
        // A listener on loopback that would see the connection if one were made.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bound");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}/jwks", listener.local_addr().expect("address"));
        let error = get_json(&agent(Policy::tenant(false)), &url).expect_err("refused");
        assert!(error.contains("private or local"), "{error}");
        assert!(listener.accept().is_err(), "no connection reached the listener");
    }
}
