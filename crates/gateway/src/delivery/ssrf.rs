//! The SSRF guard (SPEC 3.3): a webhook reaches public addresses only — not loopback, private,
//! link-local, shared, documentation or otherwise special ones — unless
//! `events.allowed_subnets` lists them. A URL is checked when an endpoint is added, and every
//! connection the webhook client opens is checked again after its DNS lookup (names can change
//! what they resolve to): the client's resolver hands out only addresses the guard permits.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Networks no webhook may reach unless allowed.
const NOT_PUBLIC: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
];

#[derive(Debug, Clone)]
pub struct Guard {
    blocked: Vec<IpNet>,
    allowed: Vec<IpNet>,
}

impl Guard {
    pub fn new(allowed: Vec<IpNet>) -> Guard {
        Guard {
            blocked: NOT_PUBLIC
                .iter()
                .map(|n| n.parse().expect("the list is valid"))
                .collect(),
            allowed,
        }
    }

    /// Whether a webhook may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        // An IPv4 address written as IPv6 is the IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allowed.iter().any(|n| n.contains(&ip))
            || !self.blocked.iter().any(|n| n.contains(&ip))
    }

    /// Checks a webhook URL: http or https, a host, and every address it resolves to permitted.
    pub async fn check_url(&self, text: &str) -> Result<Url, String> {
        let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{text}`: a webhook URL is http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("`{text}`: put no credentials in a webhook URL"));
        }
        let host = match url.host() {
            None => return Err(format!("`{text}` names no host")),
            Some(Host::Domain(name)) => name.to_string(),
            // An address written out is checked as it is: there is nothing to resolve.
            Some(_) => return self.refuse_literal(&url).map_or(Ok(url), Err),
        };
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("`{host}` did not resolve within 5 s"))?
        .map_err(|e| format!("`{host}` does not resolve: {e}"))?
        .collect();
        if addrs.is_empty() {
            return Err(format!("`{host}` resolves to no address"));
        }
        if let Some(bad) = addrs.iter().find(|a| !self.permits(a.ip())) {
            return Err(refusal(&host, bad.ip()));
        }
        Ok(url)
    }

    /// Why webhooks may not reach the address `url` names, when it names one written out
    /// (those never reach the resolver, which checks the names); `None` for a name.
    pub fn refuse_literal(&self, url: &Url) -> Option<String> {
        let ip = match url.host()? {
            Host::Ipv4(a) => IpAddr::V4(a),
            Host::Ipv6(a) => IpAddr::V6(a),
            Host::Domain(_) => return None,
        };
        (!self.permits(ip)).then(|| refusal(&ip.to_string(), ip))
    }
}

fn refusal(host: &str, ip: IpAddr) -> String {
    format!(
        "`{host}` is {ip}, an address webhooks may not reach (loopback, private, link-local or reserved); list its network in events.allowed_subnets to allow it"
    )
}

/// The webhook client's DNS resolver: only addresses the guard permits.
pub struct GuardedResolver(pub Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| guard.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                let why = match found.first() {
                    Some(a) => refusal(&host, a.ip()),
                    None => format!("`{host}` resolves to no address"),
                };
                return Err(why.into());
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass_unless_their_network_is_allowed() {
        let g = Guard::new(Vec::new());
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!g.permits(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(g.permits(ip.parse().unwrap()), "{ip}");
        }
        let lab = Guard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(lab.permits("127.0.0.1".parse().unwrap()));
        assert!(!lab.permits("10.0.0.1".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_url_is_refused_for_any_address_its_host_resolves_to() {
        let g = Guard::new(Vec::new());
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://[::1]:8080/",
            "http://10.0.0.7/",
            "http://169.254.169.254/latest/meta-data",
            "http://2130706433/", // 127.0.0.1 as one number
            "http://0x7f.1/",
        ] {
            let e = g.check_url(url).await.unwrap_err();
            assert!(
                e.contains("may not reach") || e.contains("resolve"),
                "{url}: {e}"
            );
        }
        for url in [
            "ftp://example.com/",
            "http://user:pw@example.com/",
            "not a url",
        ] {
            assert!(g.check_url(url).await.is_err(), "{url}");
        }
        let lab = Guard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert!(lab.check_url("http://localhost:9/x").await.is_ok());
    }
}
