//! What the client says about itself and its addresses, checked before any of it is used.

use super::replies::Reply;
use std::net::IpAddr;

/// A client-given name as logged and echoed: printable ASCII, at most 255 characters.
pub(super) fn sanitize(s: &str) -> String {
    s.chars()
        .take(255)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// The address-literal form of `ip` (RFC 5321 4.1.3), IPv4-mapped IPv6 as IPv4.
pub(super) fn ip_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("[{v4}]"),
            None => format!("[IPv6:{v6}]"),
        },
    }
}

/// `<@relay1,@relay2:user@host>`: the path names hops, which sluis never honours.
pub(super) fn source_routed(line: &[u8]) -> bool {
    let Some(lt) = line.iter().position(|&b| b == b'<') else {
        return false;
    };
    line.get(lt + 1) == Some(&b'@')
}

/// Refuses addresses that ask a relay to route on (percent hack, bang paths) and
/// non-ASCII addresses without SMTPUTF8.
pub(super) fn check_address(address: &str, smtputf8: bool, sender: bool) -> Option<Reply> {
    if address.is_empty() {
        return if sender {
            None
        } else {
            Some(Reply::InvalidAddress)
        };
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Some(Reply::InvalidAddress);
    };
    if local.is_empty() || domain.is_empty() || domain.starts_with('.') || domain.contains("..") {
        return Some(Reply::InvalidAddress);
    }
    if local.contains('%') {
        return Some(Reply::BadAddress("Percent-hack"));
    }
    if local.contains('!') {
        return Some(Reply::BadAddress("Bang-path"));
    }
    if !address.is_ascii() && !smtputf8 {
        return Some(Reply::Utf8Required);
    }
    if address.chars().any(|c| c.is_control()) {
        return Some(Reply::InvalidAddress);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_tricks_are_refused() {
        assert!(source_routed(
            b"RCPT TO:<@a.example,@b.example:u@c.example>\r\n"
        ));
        assert!(!source_routed(b"RCPT TO:<u@c.example>\r\n"));
        assert_eq!(
            check_address("u%x@y.example", false, false),
            Some(Reply::BadAddress("Percent-hack"))
        );
        assert_eq!(
            check_address("a!b@c.example", false, false),
            Some(Reply::BadAddress("Bang-path"))
        );
        assert_eq!(check_address("", false, true), None);
        assert_eq!(check_address("", false, false), Some(Reply::InvalidAddress));
        assert_eq!(check_address("jan@voorbeeld.nl", false, false), None);
        assert_eq!(
            check_address("jürgen@voorbeeld.nl", false, false),
            Some(Reply::Utf8Required)
        );
        assert_eq!(check_address("jürgen@voorbeeld.nl", true, false), None);
    }
}
