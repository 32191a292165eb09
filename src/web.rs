//! What the two HTTP front doors (the SCIM API and the admin console) share: the address a
//! request came from, as `trusted_proxies` lets it be known.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::config::Config;

/// The address a request came from, as `trusted_proxies` lets it be known.
pub(crate) fn client_ip(req: &HttpRequest, config: &Config) -> Option<IpAddr> {
    client_address(
        req.peer_addr().map(|a| a.ip()),
        req.headers().get_all("x-forwarded-for"),
        &config.trusted_proxies,
    )
}

/// The address a request came from: the peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` (read right to left, past other trusted proxies) that
/// is not one. Entries a proxy did not add cannot be told from forged ones, so none is believed
/// beyond the first untrusted hop; an unreadable entry stops the walk at the last trusted one.
pub(crate) fn client_address<'a>(
    peer: Option<IpAddr>,
    forwarded: impl DoubleEndedIterator<Item = &'a header::HeaderValue>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut client = peer?;
    if !is_trusted(&client) {
        return Some(client);
    }
    for value in forwarded.rev() {
        let Ok(text) = value.to_str() else {
            return Some(client);
        };
        for hop in text.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return Some(client);
            };
            client = ip;
            if !is_trusted(&client) {
                return Some(client);
            }
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(peer: &str, forwarded: &[&str], trusted: &str) -> Option<IpAddr> {
        let values: Vec<header::HeaderValue> = forwarded
            .iter()
            .map(|v| {
                header::HeaderValue::from_str(v).unwrap_or(header::HeaderValue::from_static(""))
            })
            .collect();
        let trusted = crate::config::networks(Some(&trusted.to_string())).unwrap_or_default();
        client_address(peer.parse().ok(), values.iter(), &trusted)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        // No proxy trusted: the header is anyone's to write.
        assert_eq!(
            client("203.0.113.9", &["198.51.100.1"], ""),
            ip("203.0.113.9")
        );
        // From a trusted proxy: the hop it added, not what the client claimed before it.
        assert_eq!(
            client("10.0.0.2", &["192.0.2.66, 198.51.100.1"], "10.0.0.0/8"),
            ip("198.51.100.1")
        );
        // Through two trusted proxies, on separate header lines.
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1", "10.0.0.3"], "10.0.0.0/8"),
            ip("198.51.100.1")
        );
        // Only proxies, or nothing forwarded: the last trusted address.
        assert_eq!(
            client("10.0.0.2", &["10.0.0.3"], "10.0.0.0/8"),
            ip("10.0.0.3")
        );
        assert_eq!(client("10.0.0.2", &[], "10.0.0.2"), ip("10.0.0.2"));
        // An unreadable hop stops the walk where trust ends.
        assert_eq!(
            client("10.0.0.2", &["198.51.100.1, bogus"], "10.0.0.0/8"),
            ip("10.0.0.2")
        );
        assert_eq!(client("::1", &["2001:db8::7"], "::1"), ip("2001:db8::7"));
    }
}
