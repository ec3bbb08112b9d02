//! Which destinations alert deliveries may be sent to (the outbound-webhook SSRF guard).
//!
//! A channel URL is user input, and the dispatcher POSTs to it from inside the server's own
//! network: unless private networks are allowed, it must not reach loopback, private,
//! link-local (cloud metadata) or other non-public addresses.
//! - [`parse_channel_url`] checks the URL's shape when a channel is created or changed;
//! - [`check_literal_host`] refuses hosts that are addresses (or well-known local names);
//! - [`GuardedResolver`] refuses names whose addresses are all forbidden, at connect time.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// The longest channel URL accepted.
const MAX_URL_CHARS: usize = 2048;

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl Refused {
    fn address(ip: IpAddr, class: &str) -> Self {
        let article = if class.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
        Refused(format!("{ip} is {article} {class} address"))
    }
}

/// Checks an alert channel URL as given by a user: scheme must be http or https, a host is
/// required, no userinfo (user:pass@) allowed, at most 2048 chars, no fragment. Returns the
/// parsed Url or a human message naming the problem (e.g. "must be an http or https URL").
pub fn parse_channel_url(raw: &str) -> Result<Url, String> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters"));
    }
    let url = Url::parse(raw).map_err(|e| format!("is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_string());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_string());
    }
    // Credentials in the URL would be stored and shown with it; receivers authenticate
    // deliveries by their signature instead.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".to_string());
    }
    // A fragment is never sent to the server, so one here is a mistake.
    if url.fragment().is_some() {
        return Err("must not contain a fragment (#...)".to_string());
    }
    Ok(url)
}

/// Forbidden IPv4 ranges as (network, prefix length, class). The first match wins, so single
/// cloud metadata addresses come before the ranges that hold them.
const V4_RULES: &[(Ipv4Addr, u32, &str)] = &[
    (Ipv4Addr::new(169, 254, 169, 254), 32, "link-local / cloud metadata"),
    (Ipv4Addr::new(100, 100, 100, 200), 32, "cloud metadata"), // Alibaba
    (Ipv4Addr::new(168, 63, 129, 16), 32, "cloud metadata"),   // Azure wireserver
    (Ipv4Addr::new(0, 0, 0, 0), 8, "unspecified"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared (CGNAT)"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "reserved"), // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// Forbidden IPv6 ranges, as [`V4_RULES`]. Addresses that embed an IPv4 one are judged by it.
const V6_RULES: &[(Ipv6Addr, u32, &str)] = &[
    (Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254), 128, "cloud metadata"), // AWS
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "private (site-local)"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "private (unique-local)"),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "private (local-use NAT64)"),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "reserved"), // discard-only
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, "documentation"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// The class of an address the dispatcher must not send to unless private networks are
/// allowed, or None if public.
pub fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    let matches = |net: Ipv4Addr, len: u32| bits & prefix_mask(len, 32) as u32 == u32::from(net);
    V4_RULES.iter().find(|(net, len, _)| matches(*net, *len)).map(|(_, _, class)| *class)
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    let matches = |net: Ipv6Addr, len: u32| bits & prefix_mask(len, 128) == u128::from(net);
    // The rules come first: :: and ::1 would otherwise be read as IPv4-compatible 0.0.0.x.
    let own = V6_RULES.iter().find(|(net, len, _)| matches(*net, *len)).map(|(_, _, class)| *class);
    own.or_else(|| embedded_v4(ip).and_then(v4_class))
}

/// The mask keeping the first `len` of `width` bits.
fn prefix_mask(len: u32, width: u32) -> u128 {
    let all = u128::MAX >> (128 - width);
    all.checked_shl(width - len.min(width)).unwrap_or(0) & all
}

/// The IPv4 address an IPv6 one reaches: IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96),
/// NAT64 (64:ff9b::/96) and 6to4 (2002::/16), so ::ffff:127.0.0.1 is loopback like 127.0.0.1.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    match ip.segments() {
        [0, 0, 0, 0, 0, 0 | 0xffff, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => {
            Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
        }
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

fn check_ip(ip: IpAddr) -> Result<(), Refused> {
    forbidden_class(ip).map_or(Ok(()), |class| Err(Refused::address(ip, class)))
}

/// When the URL's host is an IP literal (or "localhost" / *.localhost /
/// "metadata.google.internal"), refuses it unless allow_private. Other names are checked at
/// resolve time by [`GuardedResolver`].
///
/// This check is needed because reqwest calls its resolver only for names, never for hosts
/// that are IP literals: http://127.0.0.1/ would otherwise reach loopback unchecked.
pub fn check_literal_host(url: &Url, allow_private: bool) -> Result<(), Refused> {
    let Some(host) = url.host_str().filter(|_| !allow_private) else { return Ok(()) };
    // The URL parser has already normalised literals (0x7f.1 is 127.0.0.1, [::1] is bracketed).
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => check_ip(ip),
        Err(_) => check_local_name(host),
    }
}

/// Names that are local by definition, refused early so the user hears at once (they would
/// also be refused when resolved).
fn check_local_name(host: &str) -> Result<(), Refused> {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let class = if name == "localhost" || name.ends_with(".localhost") {
        "loopback"
    } else if name == "metadata.google.internal" {
        "cloud metadata"
    } else {
        return Ok(());
    };
    Err(Refused(format!("{host} is a {class} host name")))
}

/// A reqwest DNS resolver that resolves with tokio's `lookup_host` and drops every forbidden
/// address unless `allow_private`; if nothing is left it fails with [`Refused`] (boxed) naming
/// the host and the first refused address. Install with
/// `reqwest::ClientBuilder::dns_resolver(Arc::new(GuardedResolver { allow_private }))`.
///
/// The check is here, at resolve time, and not when the channel is saved, because of DNS
/// rebinding: a name can resolve to a public address when checked and to 127.0.0.1 a moment
/// later. The connector resolves the name once for the connection it actually makes and
/// connects only to the addresses returned here, so the address checked is the one connected to.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str();
            // The port is a placeholder: the connector sets the URL's own port on each address.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            let kept = keep_allowed(host, found, allow_private)?;
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

fn keep_allowed(host: &str, found: Vec<SocketAddr>, allow_private: bool) -> Result<Vec<SocketAddr>, Refused> {
    if allow_private {
        return Ok(found);
    }
    let (kept, refused): (Vec<_>, Vec<_>) = found.into_iter().partition(|a| forbidden_class(a.ip()).is_none());
    // Some public addresses left: connect to those only. None at all: the connector says so.
    let Some(first) = refused.first().filter(|_| kept.is_empty()) else { return Ok(kept) };
    let why = Refused::address(first.ip(), forbidden_class(first.ip()).unwrap_or("forbidden"));
    Err(Refused(format!("{host} resolves only to refused addresses; {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn classes() {
        let cases: &[(Option<&str>, &[&str])] = &[
            (Some("unspecified"), &["0.0.0.0", "0.1.2.3", "::"]),
            (Some("loopback"), &["127.0.0.1", "127.255.1.2", "::1", "::ffff:127.0.0.1", "2002:7f00:1::"]),
            (Some("link-local / cloud metadata"), &["169.254.169.254", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"]),
            (Some("cloud metadata"), &["100.100.100.200", "fd00:ec2::254", "168.63.129.16"]),
            (Some("link-local"), &["169.254.1.1", "fe80::1", "febf::1"]),
            (Some("private"), &["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "::10.0.0.1"]),
            (Some("private (unique-local)"), &["fd12::1", "fc00::1"]),
            (Some("shared (CGNAT)"), &["100.64.0.1", "100.127.255.255"]),
            (Some("benchmarking"), &["198.18.0.1", "198.19.255.255"]),
            (Some("multicast"), &["224.0.0.1", "239.1.1.1", "ff02::1"]),
            (Some("broadcast"), &["255.255.255.255"]),
            (Some("reserved"), &["240.0.0.1", "192.0.0.8"]),
            (Some("documentation"), &["192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1"]),
            (None, &["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111"]),
            (None, &["::ffff:8.8.8.8", "64:ff9b::101:101", "2002:808:808::"]),
        ];
        for (want, ips) in cases {
            for ip in *ips {
                assert_eq!(forbidden_class(ip.parse().unwrap()), *want, "{ip}");
            }
        }
    }

    #[test]
    fn channel_urls() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        let refused = [
            ("ftp://example.com/", "must be an http or https URL"),
            ("mailto:ops@example.com", "must be an http or https URL"),
            ("http://", "not a valid URL"),
            ("not a url", "not a valid URL"),
            ("https://user:pass@example.com/", "user name or password"),
            ("https://user@example.com/", "user name or password"),
            ("https://example.com/hook#frag", "fragment"),
            (long.as_str(), "at most 2048"),
        ];
        for (raw, want) in refused {
            let message = parse_channel_url(raw).unwrap_err();
            assert!(message.contains(want), "{raw}: {message}");
        }
        for raw in ["http://example.com", "https://hooks.example.com:8443/a/b?token=x&y=1", "http://10.0.0.1:9000/"] {
            assert!(parse_channel_url(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn literal_hosts() {
        let cases = [
            ("http://169.254.169.254/", Some("169.254.169.254 is a link-local / cloud metadata address")),
            ("http://127.0.0.1/", Some("127.0.0.1 is a loopback address")),
            ("http://0x7f.1/", Some("127.0.0.1 is a loopback address")),
            ("http://[::1]:8080/", Some("::1 is a loopback address")),
            ("http://[::ffff:10.0.0.1]/", Some("::ffff:10.0.0.1 is a private address")),
            ("http://0.0.0.0/", Some("0.0.0.0 is an unspecified address")),
            ("http://localhost/", Some("localhost is a loopback host name")),
            ("http://Foo.LocalHost./", Some("foo.localhost. is a loopback host name")),
            ("http://metadata.google.internal/", Some("metadata.google.internal is a cloud metadata host name")),
            ("http://10.0.0.1/", Some("10.0.0.1 is a private address")),
            ("https://example.com/", None),
            ("https://8.8.8.8/", None),
        ];
        for (raw, want) in cases {
            let url = Url::parse(raw).unwrap();
            assert_eq!(check_literal_host(&url, false).err(), want.map(|m| Refused(m.to_string())), "{raw}");
            assert_eq!(check_literal_host(&url, true), Ok(()), "{raw}");
        }
    }

    #[tokio::test]
    async fn resolver_filters_localhost() {
        let name = || "localhost".parse::<Name>().unwrap();
        let err = GuardedResolver { allow_private: false }.resolve(name()).await.err().unwrap();
        let refused = err.downcast_ref::<Refused>().expect("a Refused");
        assert!(refused.0.starts_with("localhost resolves only to refused addresses; "), "{refused}");
        assert!(refused.0.contains("loopback"), "{refused}");
        let addrs: Vec<SocketAddr> = GuardedResolver { allow_private: true }.resolve(name()).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    /// A server answering every request with an empty 200.
    async fn serve_ok() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            }
        });
        port
    }

    fn client(allow_private: bool) -> reqwest::Client {
        let resolver = Arc::new(GuardedResolver { allow_private });
        reqwest::Client::builder().no_proxy().dns_resolver(resolver).build().unwrap()
    }

    #[tokio::test]
    async fn client_end_to_end() {
        let url = format!("http://localhost:{}/", serve_ok().await);
        let err = client(false).get(&url).send().await.unwrap_err();
        // The dispatcher finds the refusal by walking the error's sources.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source.filter(|e| !e.is::<Refused>()) {
            source = e.source();
        }
        assert!(source.is_some(), "no Refused in {err:?}");
        let answer = client(true).get(&url).send().await.unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
    }
}
