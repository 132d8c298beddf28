//! The client's address. Behind a reverse proxy the socket's peer is the proxy: when the peer
//! is one of `[web] trusted_proxies`, the `Forwarded` (RFC 7239) or else `X-Forwarded-For`
//! header is read from the right, past every trusted hop, and the first untrusted hop is the
//! client. Anyone else's header is ignored: it is the sender's to forge.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

pub fn client_ip(trusted: &[IpNet], headers: &HeaderMap, peer: IpAddr) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = canonical(peer);
    if !is_trusted(&client) {
        return client;
    }
    for hop in hops(headers).into_iter().rev() {
        match hop {
            Some(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // An unreadable hop ("unknown", an obfuscated name): the last proxy that
            // reached us from it stands for it.
            None => break,
        }
    }
    client
}

/// The hops the trusted proxies recorded, in order (client first); `None` for one unreadable.
fn hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let joined = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("unknown"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let forwarded = joined("forwarded");
    if !forwarded.trim().is_empty() {
        return forwarded
            .split(',')
            .map(|element| {
                let value = element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then_some(v)
                });
                value.and_then(parse_hop)
            })
            .collect();
    }
    let xff = joined("x-forwarded-for");
    if xff.trim().is_empty() {
        return Vec::new();
    }
    xff.split(',').map(parse_hop).collect()
}

/// `192.0.2.1`, `"192.0.2.1:4711"`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_hop(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    let ip = v
        .parse::<IpAddr>()
        .ok()
        .or_else(|| v.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| v.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(canonical(ip))
}

/// An IPv4 address seen through an IPv6 socket is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_only_up_to_the_first_untrusted_hop() {
        let t = nets(&["10.0.0.0/8"]);
        let h = with("x-forwarded-for", "1.1.1.1, 203.0.113.5, 10.0.0.7");
        assert_eq!(client_ip(&t, &h, ip("10.0.0.1")), ip("203.0.113.5"));
        assert_eq!(client_ip(&t, &h, ip("192.0.2.9")), ip("192.0.2.9"));
        assert_eq!(client_ip(&[], &h, ip("10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(
            client_ip(&t, &HeaderMap::new(), ip("10.0.0.1")),
            ip("10.0.0.1")
        );
        let h = with("x-forwarded-for", "203.0.113.5, unknown");
        assert_eq!(client_ip(&t, &h, ip("10.0.0.1")), ip("10.0.0.1"));
        let h = with("x-forwarded-for", "10.0.0.3");
        assert_eq!(client_ip(&t, &h, ip("::ffff:10.0.0.1")), ip("10.0.0.3"));
    }

    #[test]
    fn forwarded_is_preferred_and_parsed_with_ports_and_quotes() {
        let t = nets(&["127.0.0.1/32"]);
        let mut h = with(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
        );
        h.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        assert_eq!(client_ip(&t, &h, ip("127.0.0.1")), ip("2001:db8:cafe::17"));
        let h = with("forwarded", "for=\"192.0.2.60:80\"");
        assert_eq!(client_ip(&t, &h, ip("127.0.0.1")), ip("192.0.2.60"));
    }
}
