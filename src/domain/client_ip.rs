//! Which address a request came from: the socket peer, or, when the peer is a trusted proxy, the first
//! address in `X-Forwarded-For` (read from the right) that is not a trusted proxy itself.

use std::net::IpAddr;

use ipnet::IpNet;

pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.unwrap_or_default().rsplit(',') {
        // A malformed hop ends the chain: nothing left of it can be trusted to be what it says.
        let Ok(ip) = hop.trim().parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(&ip) {
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
}
