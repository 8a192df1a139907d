//! Which address a request came from: the socket peer, or, when the peer is a trusted proxy, the first
//! address in `X-Forwarded-For` (read from the right) that is not a trusted proxy itself.

use std::net::IpAddr;

use ipnet::IpNet;

/// Whether `ip` is one of the configured proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or_default().rsplit(',') {
        // A malformed hop ends the chain: nothing left of it can be trusted to be what it says.
        let Ok(ip) = hop.trim().parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    client
}

/// `LATCHKEY_TRUSTED_PROXIES`: comma-separated addresses or CIDR blocks.
pub fn parse_trusted(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not an IP address or CIDR block"))
        })
        .collect()
}

/// Whom a rate limit counts: an IPv4 address, or the /64 an IPv6 address is in (one subscriber's network
/// usually gets a whole /64, so counting single IPv6 addresses would give one client 2^64 budgets).
pub fn rate_limit_subject(ip: &str) -> String {
    let Ok(IpAddr::V6(v6)) = ip.parse::<IpAddr>() else { return ip.to_string() };
    match v6.to_ipv4_mapped() {
        Some(v4) => v4.to_string(),
        None => format!("{}/64", std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_claim_another_address() {
        assert_eq!(client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &[]), ip("203.0.113.9"));
        let trusted = parse_trusted("10.0.0.0/8").unwrap();
        assert_eq!(client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let trusted = parse_trusted("10.0.0.0/8, 192.168.1.1").unwrap();
        assert_eq!(client_ip(ip("10.0.0.2"), Some("1.2.3.4"), &trusted), ip("1.2.3.4"));
        // The client prepended a fake address; the proxies appended the real one.
        assert_eq!(client_ip(ip("10.0.0.2"), Some("6.6.6.6, 1.2.3.4, 192.168.1.1"), &trusted), ip("1.2.3.4"));
        assert_eq!(client_ip(ip("10.0.0.2"), Some("garbage, 1.2.3.4"), &trusted), ip("1.2.3.4"));
        assert_eq!(client_ip(ip("10.0.0.2"), None, &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), Some("1.2.3.4, junk"), &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn parsing() {
        assert_eq!(parse_trusted("").unwrap(), vec![]);
        assert_eq!(parse_trusted("127.0.0.1, ::1, 10.0.0.0/8").unwrap().len(), 3);
        assert!(parse_trusted("10.0.0.0/33").is_err());
        assert!(parse_trusted("proxy.example").is_err());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(rate_limit_subject("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(rate_limit_subject("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_ne!(rate_limit_subject("2001:db8:1:3::1"), rate_limit_subject("2001:db8:1:2::1"));
        assert_eq!(rate_limit_subject("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(rate_limit_subject("192.0.2.7"), "192.0.2.7");
        assert_eq!(rate_limit_subject("unknown"), "unknown");
    }
}
